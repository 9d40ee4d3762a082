// SPDX-License-Identifier: Apache-2.0
#include "program.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_opts.h"

namespace tenet {

thread_local UniqueFd *BpfProgram::pending_ = nullptr;

Napi::Object BpfProgram::Adopt(Napi::Env env, UniqueFd fd)
{
	pending_ = &fd;
	Napi::Object obj;
	try {
		obj = AddonData::Get(env).programCtor.New({});
	} catch (...) {
		pending_ = nullptr;
		throw;
	}
	pending_ = nullptr;
	return obj;
}

BpfProgram *BpfProgram::FromValue(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	if (!v.IsObject() ||
	    !v.As<Napi::Object>().InstanceOf(AddonData::Get(env).programCtor.Value()))
		ThrowTypeError(env, what + " must be a BpfProgram");
	return Unwrap(v.As<Napi::Object>());
}

BpfProgram::BpfProgram(const Napi::CallbackInfo &info)
	: Napi::ObjectWrap<BpfProgram>(info),
	  FdHandle(info.Env(), pending_ ? std::move(*pending_) : UniqueFd())
{
	if (!pending_)
		ThrowTypeError(info.Env(), "BpfProgram cannot be constructed directly: use "
					   "BpfProgram.openPinned(), BpfProgram.fromId() or "
					   "BpfObject.program()");
	pending_ = nullptr;
}

Napi::Function BpfProgram::Define(Napi::Env env)
{
	return DefineClass(env, "BpfProgram",
			   {
				   StaticMethod<&BpfProgram::OpenPinned>("openPinned"),
				   StaticMethod<&BpfProgram::FromId>("fromId"),
				   InstanceAccessor<&BpfProgram::GetFd>("fd"),
				   InstanceAccessor<&BpfProgram::GetClosed>("closed"),
				   InstanceMethod<&BpfProgram::Info>("info"),
				   InstanceMethod<&BpfProgram::Pin>("pin"),
				   InstanceMethod<&BpfProgram::Close>("close"),
				   InstanceMethod<&BpfProgram::TestRun>("testRun"),
			   });
}

Napi::Value BpfProgram::OpenPinned(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = GetString(env, info[0], "BpfProgram.openPinned: path");
	return Adopt(env, OpenPinnedFd(env, path, BpfFdKind::Prog));
}

Napi::Value BpfProgram::FromId(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t id = GetU32(env, info[0], "BpfProgram.fromId: id");
	UniqueFd fd(bpf_prog_get_fd_by_id(id));
	if (!fd.valid())
		ThrowBpfError(env, "bpf_prog_get_fd_by_id", errno,
			      {"id " + std::to_string(id), {}, {}, {}});
	return Adopt(env, std::move(fd));
}

Napi::Value BpfProgram::GetFd(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), FdOrThrow(info.Env(), "BpfProgram.fd"));
}

Napi::Value BpfProgram::GetClosed(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), IsClosed());
}

Napi::Value BpfProgram::Info(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfProgram.info");
	// Zeroed: the kernel treats non-zero array pointers in prog_info as requests to fill them.
	bpf_prog_info pi;
	memset(&pi, 0, sizeof(pi));
	__u32 len = sizeof(pi);
	if (bpf_obj_get_info_by_fd(fd, &pi, &len) < 0)
		ThrowBpfError(env, "bpf_obj_get_info_by_fd", errno);
	// A second call for the ids of the maps the program uses (the count is known now).
	std::vector<__u32> mapIds(pi.nr_map_ids);
	if (!mapIds.empty()) {
		bpf_prog_info mi;
		memset(&mi, 0, sizeof(mi));
		mi.nr_map_ids = static_cast<__u32>(mapIds.size());
		mi.map_ids = reinterpret_cast<__u64>(mapIds.data());
		__u32 mlen = sizeof(mi);
		if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) < 0)
			ThrowBpfError(env, "bpf_obj_get_info_by_fd", errno);
		// Maps may have been added in between (never for a loaded program): keep what fits.
		mapIds.resize(std::min<size_t>(mapIds.size(), mi.nr_map_ids));
	}

	static const char hex[] = "0123456789abcdef";
	std::string tag;
	for (size_t i = 0; i < sizeof(pi.tag); i++) {
		tag += hex[pi.tag[i] >> 4];
		tag += hex[pi.tag[i] & 15];
	}
	Napi::Object out = Napi::Object::New(env);
	out.Set("id", pi.id);
	out.Set("name", std::string(pi.name, strnlen(pi.name, sizeof(pi.name))));
	out.Set("type", pi.type);
	out.Set("tag", tag);
	out.Set("xlatedInsns", pi.xlated_prog_len / 8);
	out.Set("jitedLen", pi.jited_prog_len);
	out.Set("verifiedInsns", pi.verified_insns);
	Napi::Array ids = Napi::Array::New(env, mapIds.size());
	for (size_t i = 0; i < mapIds.size(); i++)
		ids.Set(static_cast<uint32_t>(i), mapIds[i]);
	out.Set("mapIds", ids);
	return out;
}

Napi::Value BpfProgram::Pin(const Napi::CallbackInfo &info)
{
	PinTo(info.Env(), info[0], "BpfProgram.pin");
	return info.Env().Undefined();
}

Napi::Value BpfProgram::Close(const Napi::CallbackInfo &info)
{
	Release(false);
	return info.Env().Undefined();
}

Napi::Value BpfProgram::TestRun(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfProgram.testRun";
	int fd = FdOrThrow(env, fn.c_str());
	Napi::Object o = GetOptions(info, 0, fn + ": options");

	bpf_test_run_opts opts;
	InitOpts(opts);

	// Inputs are copied: the kernel reads them during the call only, but a copy keeps us
	// independent of what the caller's ArrayBuffer does (and lets us pass an empty input).
	std::vector<uint8_t> dataIn;
	Napi::Value dataValue = OptValue(o, "data");
	if (!dataValue.IsEmpty()) {
		ByteView d = GetBytes(env, dataValue, fn + ": data");
		dataIn.assign(d.data, d.data + d.size);
	}
	// Room for programs that grow the packet (bpf_xdp_adjust_head, encapsulation in tc).
	uint32_t dataOutSize =
		OptU32(o, "dataOutSize", fn).value_or(static_cast<uint32_t>(dataIn.size()) + 256);
	std::vector<uint8_t> dataOut;
	try {
		dataOut.resize(dataOutSize);
	} catch (const std::bad_alloc &) {
		// Only Napi::Error becomes a JS exception; anything else would abort the process.
		ThrowBpfError(env, fn, ENOMEM, {"dataOutSize is too large", {}, {}, {}});
	}

	std::vector<uint8_t> ctxIn;
	Napi::Value ctxValue = OptValue(o, "ctx");
	if (!ctxValue.IsEmpty() && !ctxValue.IsNull()) {
		ByteView c = GetBytes(env, ctxValue, fn + ": ctx");
		ctxIn.assign(c.data, c.data + c.size);
	}
	uint32_t ctxOutSize =
		OptU32(o, "ctxOutSize", fn).value_or(static_cast<uint32_t>(ctxIn.size()));
	std::vector<uint8_t> ctxOut;
	try {
		ctxOut.resize(ctxOutSize);
	} catch (const std::bad_alloc &) {
		ThrowBpfError(env, fn, ENOMEM, {"ctxOutSize is too large", {}, {}, {}});
	}

	if (!dataIn.empty()) {
		opts.data_in = dataIn.data();
		opts.data_size_in = dataIn.size();
	}
	if (dataOutSize > 0) {
		opts.data_out = dataOut.data();
		opts.data_size_out = dataOutSize;
	}
	if (!ctxIn.empty()) {
		opts.ctx_in = ctxIn.data();
		opts.ctx_size_in = ctxIn.size();
	}
	if (ctxOutSize > 0) {
		opts.ctx_out = ctxOut.data();
		opts.ctx_size_out = ctxOutSize;
	}
	uint32_t repeat = OptU32(o, "repeat", fn).value_or(0);
	opts.repeat = repeat > INT32_MAX ? INT32_MAX : static_cast<int>(repeat);
	opts.flags = OptU32(o, "flags", fn).value_or(0);
	opts.cpu = OptU32(o, "cpu", fn).value_or(0);
	opts.batch_size = OptU32(o, "batchSize", fn).value_or(0);

	if (bpf_prog_test_run_opts(fd, &opts) < 0) {
		int err = errno;
		std::string detail;
		if (err == ENOSPC)
			detail = "output needs " + std::to_string(opts.data_size_out) +
				 " data bytes; raise dataOutSize";
		ThrowBpfError(env, "bpf_prog_test_run_opts", err, {detail, {}, {}, {}});
	}

	Napi::Object out = Napi::Object::New(env);
	out.Set("retval", opts.retval);
	size_t dataLen = dataOutSize > 0 ? std::min<size_t>(opts.data_size_out, dataOutSize) : 0;
	out.Set("data", Napi::Buffer<uint8_t>::Copy(env, dataOut.data(), dataLen));
	if (ctxOutSize > 0)
		out.Set("ctx", Napi::Buffer<uint8_t>::Copy(
				       env, ctxOut.data(),
				       std::min<size_t>(opts.ctx_size_out, ctxOutSize)));
	else
		out.Set("ctx", env.Null());
	out.Set("durationNs", opts.duration);
	return out;
}

} // namespace tenet
