// SPDX-License-Identifier: Apache-2.0
// Two unix-socket calls Node has no API for, used by tenetd's control socket and its systemd
// readiness report: the credentials of a connected peer (SO_PEERCRED) and one datagram to
// $NOTIFY_SOCKET (sd_notify). Failures are BpfErrors like every other syscall of the addon.
#pragma once

#include <napi.h>

namespace tenet {

// JS: peerCredentials(fd: number): { pid, uid, gid }
Napi::Value PeerCredentials(const Napi::CallbackInfo &info);

// JS: sdNotify(socketPath: string, state: string): void
Napi::Value SdNotify(const Napi::CallbackInfo &info);

} // namespace tenet
