// SPDX-License-Identifier: GPL-2.0
/*
 * protobuf-c messages as JSON, walking their descriptors (pbjson.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson.h"

static struct json_object *pbj_bytes(const ProtobufCBinaryData *b)
{
	struct json_object *o;
	char *hex = malloc(2 * b->len + 1);

	if (!hex)
		return NULL;
	for (size_t i = 0; i < b->len; i++)
		sprintf(hex + 2 * i, "%02x", b->data[i]);
	hex[2 * b->len] = '\0';
	o = json_object_new_string(hex);
	free(hex);
	return o;
}

static struct json_object *pbj_enum(const ProtobufCFieldDescriptor *f,
				    int v)
{
	const ProtobufCEnumValue *ev =
		protobuf_c_enum_descriptor_get_value(f->descriptor, v);

	return ev ? json_object_new_string(ev->name) : json_object_new_int(v);
}

/* One value of field @f at @p. */
static struct json_object *pbj_value(const ProtobufCFieldDescriptor *f,
				     const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_object_new_int(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_object_new_int64(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_object_new_int64(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_object_new_uint64(*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_object_new_double(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_object_new_double(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_object_new_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return pbj_enum(f, *(const int *)p);
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		return json_object_new_string(s ? s : "");
	}
	case PROTOBUF_C_TYPE_BYTES:
		return pbj_bytes(p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

		return m ? pv_pb_to_json(m) : json_object_new_null();
	}
	}
	return json_object_new_null();
}

static size_t pbj_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

static struct json_object *pbj_repeated(const ProtobufCFieldDescriptor *f,
					const ProtobufCMessage *m)
{
	size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
	const char *arr = *(char *const *)((const char *)m + f->offset);
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++)
		json_object_array_add(a, pbj_value(f, arr + i * pbj_size(f)));
	return a;
}

struct json_object *pv_pb_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	struct json_object *o = json_object_new_object();

	for (unsigned int i = 0; o && i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = (const char *)m + f->offset;

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
		    *(const uint32_t *)((const char *)m + f->quantifier_offset) !=
		    f->id)
			continue;
		json_object_object_add(o, f->name,
				       f->label == PROTOBUF_C_LABEL_REPEATED ?
				       pbj_repeated(f, m) : pbj_value(f, p));
	}
	return o;
}
