// SPDX-License-Identifier: Apache-2.0
// JS entry points that attach programs to interfaces: XDP (netlink and link) in attach_xdp.cc,
// tc clsact (netlink) and tcx links in attach_tc.cc. All take a Target (netns.h).
#pragma once

#include <napi.h>

namespace tenet {

Napi::Value XdpAttach(const Napi::CallbackInfo &info);
Napi::Value XdpDetach(const Napi::CallbackInfo &info);
Napi::Value XdpQuery(const Napi::CallbackInfo &info);
Napi::Value XdpLinkAttach(const Napi::CallbackInfo &info);

Napi::Value TcAttach(const Napi::CallbackInfo &info);
Napi::Value TcDetach(const Napi::CallbackInfo &info);
Napi::Value TcQuery(const Napi::CallbackInfo &info);
Napi::Value TcHookDestroy(const Napi::CallbackInfo &info);
Napi::Value TcxLinkAttach(const Napi::CallbackInfo &info);

} // namespace tenet
