// SPDX-License-Identifier: Apache-2.0
#include "args.h"

#include <cmath>

#include "errors.h"

namespace tenet {

bool IsBytes(const Napi::Value &v) { return v.IsTypedArray() || v.IsDataView(); }

ByteView GetBytes(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	ByteView out;
	if (v.IsTypedArray()) {
		Napi::TypedArray ta = v.As<Napi::TypedArray>();
		Napi::ArrayBuffer ab = ta.ArrayBuffer();
		out.data = static_cast<uint8_t *>(ab.Data()) + ta.ByteOffset();
		out.size = ta.ByteLength();
		return out;
	}
	if (v.IsDataView()) {
		Napi::DataView dv = v.As<Napi::DataView>();
		Napi::ArrayBuffer ab = dv.ArrayBuffer();
		out.data = static_cast<uint8_t *>(ab.Data()) + dv.ByteOffset();
		out.size = dv.ByteLength();
		return out;
	}
	ThrowTypeError(env, what + " must be a Buffer or Uint8Array");
}

ByteView GetBytesOfSize(Napi::Env env, const Napi::Value &v, size_t size, const std::string &what)
{
	ByteView b = GetBytes(env, v, what);
	if (b.size != size)
		ThrowTypeError(env, what + " must be " + std::to_string(size) + " bytes, got " +
					    std::to_string(b.size));
	return b;
}

static double GetNumber(Napi::Env env, const Napi::Value &v, const std::string &what,
			const char *kind)
{
	if (!v.IsNumber())
		ThrowTypeError(env, what + " must be " + kind);
	double d = v.As<Napi::Number>().DoubleValue();
	if (!std::isfinite(d) || std::floor(d) != d)
		ThrowTypeError(env, what + " must be " + kind);
	return d;
}

uint32_t GetU32(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	double d = GetNumber(env, v, what, "an integer in [0, 2^32)");
	if (d < 0 || d > 4294967295.0)
		ThrowTypeError(env, what + " must be an integer in [0, 2^32)");
	return static_cast<uint32_t>(d);
}

int32_t GetI32(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	double d = GetNumber(env, v, what, "a 32-bit integer");
	if (d < -2147483648.0 || d > 2147483647.0)
		ThrowTypeError(env, what + " must be a 32-bit integer");
	return static_cast<int32_t>(d);
}

uint64_t GetU64(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	if (v.IsBigInt()) {
		bool lossless = false;
		uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
		if (!lossless)
			ThrowTypeError(env, what + " must fit in an unsigned 64-bit integer");
		return u;
	}
	double d = GetNumber(env, v, what, "a non-negative integer or bigint");
	if (d < 0 || d > 9007199254740991.0)
		ThrowTypeError(env, what + " must be a non-negative safe integer or bigint");
	return static_cast<uint64_t>(d);
}

std::string GetString(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	if (!v.IsString())
		ThrowTypeError(env, what + " must be a string");
	std::string s = v.As<Napi::String>().Utf8Value();
	// A NUL inside would silently truncate every path and name we hand to C.
	if (s.find('\0') != std::string::npos)
		ThrowTypeError(env, what + " must not contain NUL characters");
	return s;
}

bool GetBool(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	if (!v.IsBoolean())
		ThrowTypeError(env, what + " must be a boolean");
	return v.As<Napi::Boolean>().Value();
}

Napi::Object GetOptions(const Napi::CallbackInfo &info, size_t index, const std::string &what)
{
	Napi::Env env = info.Env();
	if (index >= info.Length() || info[index].IsUndefined())
		return Napi::Object::New(env);
	Napi::Value v = info[index];
	if (!v.IsObject() || v.IsArray() || v.IsFunction() || IsBytes(v))
		ThrowTypeError(env, what + " must be an options object");
	return v.As<Napi::Object>();
}

Napi::Value OptValue(Napi::Object o, const char *key)
{
	if (!o.Has(key))
		return Napi::Value();
	Napi::Value v = o.Get(key);
	if (v.IsUndefined())
		return Napi::Value();
	return v;
}

static std::string Field(const std::string &fn, const char *key) { return fn + ": " + key; }

std::optional<uint32_t> OptU32(Napi::Object o, const char *key, const std::string &fn)
{
	Napi::Value v = OptValue(o, key);
	if (v.IsEmpty())
		return std::nullopt;
	return GetU32(o.Env(), v, Field(fn, key));
}

std::optional<int32_t> OptI32(Napi::Object o, const char *key, const std::string &fn)
{
	Napi::Value v = OptValue(o, key);
	if (v.IsEmpty())
		return std::nullopt;
	return GetI32(o.Env(), v, Field(fn, key));
}

std::optional<uint64_t> OptU64(Napi::Object o, const char *key, const std::string &fn)
{
	Napi::Value v = OptValue(o, key);
	if (v.IsEmpty())
		return std::nullopt;
	return GetU64(o.Env(), v, Field(fn, key));
}

std::optional<std::string> OptString(Napi::Object o, const char *key, const std::string &fn)
{
	Napi::Value v = OptValue(o, key);
	if (v.IsEmpty())
		return std::nullopt;
	return GetString(o.Env(), v, Field(fn, key));
}

std::optional<bool> OptBool(Napi::Object o, const char *key, const std::string &fn)
{
	Napi::Value v = OptValue(o, key);
	if (v.IsEmpty())
		return std::nullopt;
	return GetBool(o.Env(), v, Field(fn, key));
}

} // namespace tenet
