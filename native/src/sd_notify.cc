// SPDX-License-Identifier: Apache-2.0
// sd_notify(3) without libsystemd: one datagram with the state text ("READY=1") to the unix
// socket systemd names in $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
//
// Why native and not the systemd-notify binary: with the default NotifyAccess=main systemd only
// accepts messages from the service's main pid, and it attributes a message to a unit by the
// sender's cgroup, which a short-lived helper may no longer have when systemd reads the message
// (a known race of systemd-notify). Sent from tenetd itself, the message carries tenetd's pid
// (SCM_CREDENTIALS are attached by the kernel for unix datagram sockets with SO_PASSCRED on the
// receiver) and neither problem exists. Node has no unix datagram sockets, hence this.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "args.h"
#include "errors.h"
#include "unix.h"
#include "unique_fd.h"

namespace tenet {

Napi::Value SdNotify(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = GetString(env, info[0], "sdNotify: socketPath");
	std::string state = GetString(env, info[1], "sdNotify: state");
	if (path.empty() || (path[0] != '/' && path[0] != '@'))
		ThrowTypeError(env, "sdNotify: socketPath must be absolute or start with '@'");

	struct sockaddr_un addr = {};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof(addr.sun_path))
		ThrowTypeError(env, "sdNotify: socketPath is too long");
	memcpy(addr.sun_path, path.data(), path.size());
	if (path[0] == '@')
		addr.sun_path[0] = '\0'; // abstract namespace: no terminating NUL counts
	socklen_t addrlen =
		static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size());

	UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	if (fd.get() < 0)
		ThrowBpfError(env, "socket(AF_UNIX, SOCK_DGRAM)", errno);
	ssize_t n = sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
			   reinterpret_cast<struct sockaddr *>(&addr), addrlen);
	if (n < 0)
		ThrowBpfError(env, "sendto", errno, {path, {}, {}, {}});
	if (static_cast<size_t>(n) != state.size())
		ThrowBpfError(env, "sendto", EMSGSIZE, {path, {}, {}, {}});
	return env.Undefined();
}

} // namespace tenet
