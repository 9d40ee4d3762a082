// SPDX-License-Identifier: Apache-2.0
#include "link.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_opts.h"
#include "program.h"

namespace tenet {

// Link types newer than the system uapi header (linux-libc-dev 6.1); values from the kernel's
// enum bpf_link_type, which never renumbers.
static constexpr uint32_t kLinkTypeXdp = 6;
static constexpr uint32_t kLinkTypeTcx = 11;
static constexpr uint32_t kLinkTypeNetkit = 13;

thread_local UniqueFd *BpfLink::pending_ = nullptr;

Napi::Object BpfLink::Adopt(Napi::Env env, UniqueFd fd)
{
	pending_ = &fd;
	Napi::Object obj;
	try {
		obj = AddonData::Get(env).linkCtor.New({});
	} catch (...) {
		pending_ = nullptr;
		throw;
	}
	pending_ = nullptr;
	return obj;
}

BpfLink::BpfLink(const Napi::CallbackInfo &info)
	: Napi::ObjectWrap<BpfLink>(info),
	  FdHandle(info.Env(), pending_ ? std::move(*pending_) : UniqueFd())
{
	if (!pending_)
		ThrowTypeError(info.Env(), "BpfLink cannot be constructed directly: use "
					   "BpfLink.openPinned(), BpfLink.fromId(), "
					   "xdpLinkAttach() or tcxLinkAttach()");
	pending_ = nullptr;
}

Napi::Function BpfLink::Define(Napi::Env env)
{
	return DefineClass(env, "BpfLink",
			   {
				   StaticMethod<&BpfLink::OpenPinned>("openPinned"),
				   StaticMethod<&BpfLink::FromId>("fromId"),
				   StaticMethod<&BpfLink::Unpin>("unpin"),
				   InstanceAccessor<&BpfLink::GetFd>("fd"),
				   InstanceAccessor<&BpfLink::GetClosed>("closed"),
				   InstanceMethod<&BpfLink::Info>("info"),
				   InstanceMethod<&BpfLink::Pin>("pin"),
				   InstanceMethod<&BpfLink::Update>("update"),
				   InstanceMethod<&BpfLink::Detach>("detach"),
				   InstanceMethod<&BpfLink::Close>("close"),
			   });
}

Napi::Value BpfLink::OpenPinned(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = GetString(env, info[0], "BpfLink.openPinned: path");
	return Adopt(env, OpenPinnedFd(env, path, BpfFdKind::Link));
}

Napi::Value BpfLink::FromId(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t id = GetU32(env, info[0], "BpfLink.fromId: id");
	UniqueFd fd(bpf_link_get_fd_by_id(id));
	if (!fd.valid())
		ThrowBpfError(env, "bpf_link_get_fd_by_id", errno,
			      {"id " + std::to_string(id), {}, {}, {}});
	return Adopt(env, std::move(fd));
}

Napi::Value BpfLink::Unpin(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	UnpinPath(env, GetString(env, info[0], "BpfLink.unpin: path"));
	return env.Undefined();
}

Napi::Value BpfLink::GetFd(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), FdOrThrow(info.Env(), "BpfLink.fd"));
}

Napi::Value BpfLink::GetClosed(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), IsClosed());
}

Napi::Value BpfLink::Info(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfLink.info");
	bpf_link_info li;
	memset(&li, 0, sizeof(li));
	__u32 len = sizeof(li);
	if (bpf_obj_get_info_by_fd(fd, &li, &len) < 0)
		ThrowBpfError(env, "bpf_obj_get_info_by_fd", errno);

	Napi::Object out = Napi::Object::New(env);
	out.Set("id", li.id);
	out.Set("progId", li.prog_id);
	out.Set("type", li.type);
	// The per-type part of bpf_link_info is a union. XDP, tcx and netkit links all start it
	// with the u32 ifindex; tcx and netkit follow with the u32 attach type. Read them by
	// offset, since the 6.1 uapi header we build against has only the xdp member.
	uint32_t words[2];
	memcpy(words, &li.xdp, sizeof(words));
	if (li.type == kLinkTypeXdp || li.type == kLinkTypeTcx || li.type == kLinkTypeNetkit) {
		// A detached link (its device gone, or bpf_link_detach) reports ifindex 0.
		out.Set("ifindex", words[0]);
	}
	if (li.type == kLinkTypeTcx || li.type == kLinkTypeNetkit)
		out.Set("attachType", words[1]);
	return out;
}

Napi::Value BpfLink::Pin(const Napi::CallbackInfo &info)
{
	PinTo(info.Env(), info[0], "BpfLink.pin");
	return info.Env().Undefined();
}

Napi::Value BpfLink::Update(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfLink.update";
	int fd = FdOrThrow(env, fn.c_str());
	int newFd = BpfProgram::FromValue(env, info[0], fn + ": newProg")->FdOrThrow(env, fn.c_str());
	Napi::Object o = GetOptions(info, 1, fn + ": options");

	bpf_link_update_opts opts;
	InitOpts(opts);
	Napi::Value old = OptValue(o, "oldProg");
	if (!old.IsEmpty()) {
		// With BPF_F_REPLACE the kernel swaps only if the link still runs oldProg, so two
		// agents racing to update cannot silently undo each other.
		opts.old_prog_fd = BpfProgram::FromValue(env, old, fn + ": oldProg")
					   ->FdOrThrow(env, fn.c_str());
		opts.flags = BPF_F_REPLACE;
	}
	if (bpf_link_update(fd, newFd, &opts) < 0)
		ThrowBpfError(env, "bpf_link_update", errno);
	return env.Undefined();
}

Napi::Value BpfLink::Detach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfLink.detach");
	if (bpf_link_detach(fd) < 0)
		ThrowBpfError(env, "bpf_link_detach", errno);
	return env.Undefined();
}

Napi::Value BpfLink::Close(const Napi::CallbackInfo &info)
{
	Release(false);
	return info.Env().Undefined();
}

} // namespace tenet
