// SPDX-License-Identifier: Apache-2.0
// SO_PEERCRED: who is on the other end of a connected unix socket. The kernel records the
// peer's pid, uid and gid when it connect()s (not when it writes), so the answer cannot be
// changed by the peer afterwards and is not affected by fd passing: it is the right basis for
// tenetd's access check. The fd is borrowed from Node's socket handle; it is not closed here.
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "errors.h"
#include "unix.h"

namespace tenet {

Napi::Value PeerCredentials(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() < 1 || !info[0].IsNumber())
		ThrowTypeError(env, "peerCredentials: fd must be a number");
	double v = info[0].As<Napi::Number>().DoubleValue();
	if (!std::isfinite(v) || v < 0 || v > INT_MAX || std::floor(v) != v)
		ThrowTypeError(env, "peerCredentials: fd must be a non-negative integer");
	int fd = static_cast<int>(v);

	struct ucred cred = {};
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		ThrowBpfError(env, "getsockopt(SO_PEERCRED)", errno,
			      {"fd " + std::to_string(fd), {}, {}, {}});
	if (len != sizeof(cred))
		ThrowBpfError(env, "getsockopt(SO_PEERCRED)", EPROTO,
			      {"short answer of " + std::to_string(len) + " bytes", {}, {}, {}});

	Napi::Object out = Napi::Object::New(env);
	out.Set("pid", Napi::Number::New(env, cred.pid));
	out.Set("uid", Napi::Number::New(env, cred.uid));
	out.Set("gid", Napi::Number::New(env, cred.gid));

	// SO_PEERGROUPS (Linux 4.13): the peer's supplementary groups, recorded at connect() like
	// SO_PEERCRED (so not raced by the peer exiting and its pid being reused, as reading
	// /proc/<pid>/status would be). ERANGE says how much room the list needs.
	std::vector<gid_t> groups(64);
	for (int attempt = 0; attempt < 4; attempt++) {
		socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
			groups.resize(glen / sizeof(gid_t));
			Napi::Array arr = Napi::Array::New(env, groups.size());
			for (size_t i = 0; i < groups.size(); i++)
				arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, groups[i]));
			out.Set("groups", arr);
			return out;
		}
		if (errno != ERANGE)
			break;
		groups.resize(glen / sizeof(gid_t) + 1);
	}
	// No SO_PEERGROUPS (an older kernel): groups absent; the caller may read /proc.
	return out;
}

} // namespace tenet
