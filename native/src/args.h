// SPDX-License-Identifier: Apache-2.0
// Argument checking for the JS-facing functions. The addon trusts nothing it is given: each getter
// validates type and range and throws a TypeError naming the argument, so a wrong call is a JS
// exception and never reaches the kernel with garbage.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>

namespace tenet {

// A borrowed view of any ArrayBufferView (Buffer, Uint8Array, other typed arrays, DataView).
// Valid while the JS value is alive and no JS runs (i.e. for the duration of one native call).
struct ByteView {
	uint8_t *data = nullptr;
	size_t size = 0;
};

bool IsBytes(const Napi::Value &v);
ByteView GetBytes(Napi::Env env, const Napi::Value &v, const std::string &what);
// GetBytes plus an exact length check: "key must be 4 bytes, got 3".
ByteView GetBytesOfSize(Napi::Env env, const Napi::Value &v, size_t size, const std::string &what);

uint32_t GetU32(Napi::Env env, const Napi::Value &v, const std::string &what);
int32_t GetI32(Napi::Env env, const Napi::Value &v, const std::string &what);
// Accepts a number (a safe integer) or a bigint, for 64-bit fields.
uint64_t GetU64(Napi::Env env, const Napi::Value &v, const std::string &what);
std::string GetString(Napi::Env env, const Napi::Value &v, const std::string &what);
bool GetBool(Napi::Env env, const Napi::Value &v, const std::string &what);

// The options object at info[index]: undefined means {}; anything but a plain object is an error.
Napi::Object GetOptions(const Napi::CallbackInfo &info, size_t index, const std::string &what);

// Optional fields of an options object: absent or undefined gives nullopt.
std::optional<uint32_t> OptU32(Napi::Object o, const char *key, const std::string &fn);
std::optional<int32_t> OptI32(Napi::Object o, const char *key, const std::string &fn);
std::optional<uint64_t> OptU64(Napi::Object o, const char *key, const std::string &fn);
std::optional<std::string> OptString(Napi::Object o, const char *key, const std::string &fn);
std::optional<bool> OptBool(Napi::Object o, const char *key, const std::string &fn);
// The field's value if present and not undefined; else an empty Napi::Value.
Napi::Value OptValue(Napi::Object o, const char *key);

} // namespace tenet
