// SPDX-License-Identifier: Apache-2.0
#include "errors.h"

#include <cstring>

#include "addon.h"

namespace tenet {

std::string ErrnoName(int err)
{
	// strerrorname_np (glibc >= 2.32) knows every errno of this libc; keep a numeric fallback
	// for values it does not, so the JS side always gets a stable string.
	const char *name = strerrorname_np(err);
	if (name)
		return name;
	return "E" + std::to_string(err);
}

static std::string StrError(int err)
{
	char buf[128];
	// GNU strerror_r returns a pointer that may or may not be buf.
	const char *s = strerror_r(err, buf, sizeof(buf));
	return s ? s : "Unknown error";
}

Napi::Error MakeBpfError(Napi::Env env, const std::string &op, int err, const ErrorDetails &details)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		// A failed call that left errno unset is a bug somewhere below us; EIO says "failed"
		// without pretending to know why.
		err = EIO;

	std::string message = op + ": " + StrError(err);
	if (!details.detail.empty())
		message += " (" + details.detail + ")";

	Napi::Object init = Napi::Object::New(env);
	init.Set("code", ErrnoName(err));
	init.Set("errno", err);
	init.Set("op", op);
	if (details.log)
		init.Set("log", *details.log);
	if (details.libbpfLog)
		init.Set("libbpfLog", *details.libbpfLog);
	if (details.processed)
		init.Set("processed", *details.processed);

	AddonData &data = AddonData::Get(env);
	if (!data.errorCtor.IsEmpty()) {
		// The registered class gets (message, init) and decides how to present them.
		Napi::Object obj = data.errorCtor.New({Napi::String::New(env, message), init});
		return Napi::Error(env, obj);
	}

	// setErrorClass was never called (e.g. the addon is used without the TS layer): still
	// give callers the same fields, on a plain Error.
	Napi::Error e = Napi::Error::New(env, message);
	Napi::Object obj = e.Value();
	Napi::Array keys = init.GetPropertyNames();
	for (uint32_t i = 0; i < keys.Length(); i++) {
		Napi::Value k = keys.Get(i);
		obj.Set(k, init.Get(k));
	}
	obj.Set("name", "BpfError");
	return e;
}

void ThrowBpfError(Napi::Env env, const std::string &op, int err, const ErrorDetails &details)
{
	throw MakeBpfError(env, op, err, details);
}

void ThrowTypeError(Napi::Env env, const std::string &message)
{
	throw Napi::TypeError::New(env, message);
}

void ThrowClosed(Napi::Env env, const char *method)
{
	ThrowBpfError(env, method, EBADF, {"handle is closed", {}, {}, {}});
}

} // namespace tenet
