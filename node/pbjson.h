/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A protobuf-c message as JSON (json-c), for `pairctl ... --json`: every
 * field by its .proto name, proto3 defaults included (so a script finds
 * each key always), 64-bit numbers as JSON integers, enums by name,
 * bytes as lowercase hex, only the set member of a oneof. The schema of
 * the output is the .proto's.
 */
#ifndef PV_PBJSON_H
#define PV_PBJSON_H

#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object, or NULL without memory. */
struct json_object *pv_pb_to_json(const ProtobufCMessage *m);

#endif
