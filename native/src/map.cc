// SPDX-License-Identifier: Apache-2.0
#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_log.h"
#include "libbpf_opts.h"

namespace tenet {

thread_local BpfMap::Init *BpfMap::pending_ = nullptr;

static bool IsPerCpuType(uint32_t type)
{
	switch (type) {
	case BPF_MAP_TYPE_PERCPU_HASH:
	case BPF_MAP_TYPE_PERCPU_ARRAY:
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
	case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
		return true;
	default:
		return false;
	}
}

static bool QueryMapInfo(int fd, bpf_map_info *out)
{
	memset(out, 0, sizeof(*out));
	__u32 len = sizeof(*out);
	return bpf_obj_get_info_by_fd(fd, out, &len) == 0;
}

static MapMeta MetaFromInfo(Napi::Env env, const bpf_map_info &info)
{
	MapMeta m;
	m.type = info.type;
	m.keySize = info.key_size;
	m.valueSize = info.value_size;
	m.maxEntries = info.max_entries;
	m.flags = info.map_flags;
	m.perCpu = IsPerCpuType(info.type);
	m.valueBufSize = info.value_size;
	if (m.perCpu) {
		// The kernel copies per-CPU values in 8-byte aligned slots, one per possible CPU
		// (not online CPU: hotplug would otherwise change the layout under us).
		int ncpus = libbpf_num_possible_cpus();
		if (ncpus < 0)
			ThrowBpfError(env, "libbpf_num_possible_cpus", -ncpus);
		m.valueBufSize = static_cast<size_t>(ncpus) * ((info.value_size + 7) & ~7u);
	}
	return m;
}

Napi::Object BpfMap::Adopt(Napi::Env env, UniqueFd fd)
{
	bpf_map_info info;
	if (!QueryMapInfo(fd.get(), &info))
		ThrowBpfError(env, "bpf_obj_get_info_by_fd", errno);
	Init init{std::move(fd), MetaFromInfo(env, info)};
	pending_ = &init;
	Napi::Object obj;
	try {
		obj = AddonData::Get(env).mapCtor.New({});
	} catch (...) {
		pending_ = nullptr;
		throw;
	}
	pending_ = nullptr;
	return obj;
}

BpfMap *BpfMap::FromValue(Napi::Env env, const Napi::Value &v, const std::string &what)
{
	if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(AddonData::Get(env).mapCtor.Value()))
		ThrowTypeError(env, what + " must be a BpfMap");
	return Unwrap(v.As<Napi::Object>());
}

BpfMap::BpfMap(const Napi::CallbackInfo &info)
	: Napi::ObjectWrap<BpfMap>(info),
	  FdHandle(info.Env(), pending_ ? std::move(pending_->fd) : UniqueFd())
{
	if (!pending_)
		ThrowTypeError(info.Env(), "BpfMap cannot be constructed directly: use "
					   "BpfMap.create(), BpfMap.openPinned(), BpfMap.fromId() or "
					   "BpfObject.map()");
	meta_ = pending_->meta;
	pending_ = nullptr;
}

Napi::Function BpfMap::Define(Napi::Env env)
{
	return DefineClass(
		env, "BpfMap",
		{
			StaticMethod<&BpfMap::OpenPinned>("openPinned"),
			StaticMethod<&BpfMap::FromId>("fromId"),
			StaticMethod<&BpfMap::Create>("create"),
			StaticMethod<&BpfMap::Unpin>("unpin"),
			InstanceAccessor<&BpfMap::GetFd>("fd"),
			InstanceAccessor<&BpfMap::GetClosed>("closed"),
			InstanceAccessor<&BpfMap::GetType>("type"),
			InstanceAccessor<&BpfMap::GetKeySize>("keySize"),
			InstanceAccessor<&BpfMap::GetValueSize>("valueSize"),
			InstanceAccessor<&BpfMap::GetValueBufferSize>("valueBufferSize"),
			InstanceAccessor<&BpfMap::GetMaxEntries>("maxEntries"),
			InstanceMethod<&BpfMap::Info>("info"),
			InstanceMethod<&BpfMap::Lookup>("lookup"),
			InstanceMethod<&BpfMap::Update>("update"),
			InstanceMethod<&BpfMap::Delete>("delete"),
			InstanceMethod<&BpfMap::NextKey>("nextKey"),
			InstanceMethod<&BpfMap::LookupBatch>("lookupBatch"),
			InstanceMethod<&BpfMap::UpdateBatch>("updateBatch"),
			InstanceMethod<&BpfMap::DeleteBatch>("deleteBatch"),
			InstanceMethod<&BpfMap::Pin>("pin"),
			InstanceMethod<&BpfMap::Close>("close"),
		});
}

// ---- factories ---------------------------------------------------------------------------------

Napi::Value BpfMap::OpenPinned(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = GetString(env, info[0], "BpfMap.openPinned: path");
	return Adopt(env, OpenPinnedFd(env, path, BpfFdKind::Map));
}

Napi::Value BpfMap::FromId(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t id = GetU32(env, info[0], "BpfMap.fromId: id");
	UniqueFd fd(bpf_map_get_fd_by_id(id));
	if (!fd.valid())
		ThrowBpfError(env, "bpf_map_get_fd_by_id", errno, {"id " + std::to_string(id), {}, {}, {}});
	return Adopt(env, std::move(fd));
}

Napi::Value BpfMap::Create(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfMap.create";
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	auto type = OptU32(o, "type", fn);
	auto keySize = OptU32(o, "keySize", fn);
	auto valueSize = OptU32(o, "valueSize", fn);
	auto maxEntries = OptU32(o, "maxEntries", fn);
	if (!type || !keySize || !valueSize || !maxEntries)
		ThrowTypeError(env, fn + ": type, keySize, valueSize and maxEntries are required");
	auto name = OptString(o, "name", fn);

	bpf_map_create_opts opts;
	InitOpts(opts);
	opts.map_flags = OptU32(o, "flags", fn).value_or(0);
	opts.map_extra = OptU64(o, "mapExtra", fn).value_or(0);
	Napi::Value inner = OptValue(o, "innerMap");
	if (!inner.IsEmpty())
		opts.inner_map_fd = FromValue(env, inner, fn + ": innerMap")->FdOrThrow(env, "BpfMap.create");

	LibbpfCapture capture;
	UniqueFd fd(bpf_map_create(static_cast<bpf_map_type>(*type), name ? name->c_str() : nullptr,
				   *keySize, *valueSize, *maxEntries, &opts));
	if (!fd.valid()) {
		int err = errno;
		ThrowBpfError(env, "bpf_map_create", err, {name.value_or(""), {}, {}, {}});
	}
	return Adopt(env, std::move(fd));
}

Napi::Value BpfMap::Unpin(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	UnpinPath(env, GetString(env, info[0], "BpfMap.unpin: path"));
	return env.Undefined();
}

// ---- accessors ---------------------------------------------------------------------------------

Napi::Value BpfMap::GetFd(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), FdOrThrow(info.Env(), "BpfMap.fd"));
}

Napi::Value BpfMap::GetClosed(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), IsClosed());
}

Napi::Value BpfMap::GetType(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), meta_.type);
}

Napi::Value BpfMap::GetKeySize(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), meta_.keySize);
}

Napi::Value BpfMap::GetValueSize(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), meta_.valueSize);
}

Napi::Value BpfMap::GetValueBufferSize(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), static_cast<double>(meta_.valueBufSize));
}

Napi::Value BpfMap::GetMaxEntries(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), meta_.maxEntries);
}

Napi::Value BpfMap::Info(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfMap.info");
	bpf_map_info mi;
	if (!QueryMapInfo(fd, &mi))
		ThrowBpfError(env, "bpf_obj_get_info_by_fd", errno);
	Napi::Object out = Napi::Object::New(env);
	out.Set("id", mi.id);
	out.Set("name", std::string(mi.name, strnlen(mi.name, sizeof(mi.name))));
	out.Set("type", mi.type);
	out.Set("keySize", mi.key_size);
	out.Set("valueSize", mi.value_size);
	out.Set("maxEntries", mi.max_entries);
	out.Set("flags", mi.map_flags);
	return out;
}

// ---- element operations ------------------------------------------------------------------------

const void *BpfMap::KeyArg(Napi::Env env, const Napi::Value &v, const char *method) const
{
	if (meta_.keySize == 0) {
		// Queue and stack maps have no key; accept null/undefined or an empty buffer.
		if (v.IsNull() || v.IsUndefined())
			return nullptr;
		GetBytesOfSize(env, v, 0, std::string(method) + ": key");
		return nullptr;
	}
	return GetBytesOfSize(env, v, meta_.keySize, std::string(method) + ": key").data;
}

Napi::Value BpfMap::Lookup(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfMap.lookup");
	const void *key = KeyArg(env, info[0], "BpfMap.lookup");
	// The kernel writes straight into the Buffer we return; on a miss it is simply dropped.
	Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, meta_.valueBufSize);
	if (bpf_map_lookup_elem(fd, key, value.Data()) < 0) {
		int err = errno;
		if (err == ENOENT)
			return env.Null();
		ThrowBpfError(env, "bpf_map_lookup_elem", err);
	}
	return value;
}

Napi::Value BpfMap::Update(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfMap.update");
	const void *key = KeyArg(env, info[0], "BpfMap.update");
	ByteView value = GetBytesOfSize(env, info[1], meta_.valueBufSize, "BpfMap.update: value");
	uint64_t flags = 0;
	if (info.Length() > 2 && !info[2].IsUndefined())
		flags = GetU64(env, info[2], "BpfMap.update: flags");
	if (bpf_map_update_elem(fd, key, value.data, flags) < 0)
		ThrowBpfError(env, "bpf_map_update_elem", errno);
	return env.Undefined();
}

Napi::Value BpfMap::Delete(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfMap.delete");
	const void *key = KeyArg(env, info[0], "BpfMap.delete");
	if (bpf_map_delete_elem(fd, key) < 0) {
		int err = errno;
		if (err == ENOENT)
			return Napi::Boolean::New(env, false);
		ThrowBpfError(env, "bpf_map_delete_elem", err);
	}
	return Napi::Boolean::New(env, true);
}

Napi::Value BpfMap::NextKey(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = FdOrThrow(env, "BpfMap.nextKey");
	const void *key = nullptr;
	if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined())
		key = GetBytesOfSize(env, info[0], meta_.keySize, "BpfMap.nextKey: key").data;
	Napi::Buffer<uint8_t> next = Napi::Buffer<uint8_t>::New(env, meta_.keySize);
	if (bpf_map_get_next_key(fd, key, next.Data()) < 0) {
		int err = errno;
		if (err == ENOENT)
			return env.Null();
		ThrowBpfError(env, "bpf_map_get_next_key", err);
	}
	return next;
}

// ---- batch operations --------------------------------------------------------------------------

// The opaque batch position: hash maps use a u32 bucket index, array-like maps a key. Sizing it
// max(keySize, 4) fits both.
static size_t BatchTokenSize(const MapMeta &m) { return m.keySize > 4 ? m.keySize : 4; }

static size_t CheckedProduct(Napi::Env env, size_t a, size_t b, const std::string &what)
{
	if (a != 0 && b > SIZE_MAX / a)
		ThrowTypeError(env, what + " is too large");
	return a * b;
}

Napi::Value BpfMap::LookupBatch(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfMap.lookupBatch";
	int fd = FdOrThrow(env, fn.c_str());
	Napi::Object o = GetOptions(info, 0, fn + ": options");
	auto count = OptU32(o, "count", fn);
	if (!count || *count == 0)
		ThrowTypeError(env, fn + ": count must be a positive integer");

	size_t tokenSize = BatchTokenSize(meta_);
	std::vector<uint8_t> inToken;
	Napi::Value inBatch = OptValue(o, "inBatch");
	if (!inBatch.IsEmpty() && !inBatch.IsNull()) {
		ByteView b = GetBytesOfSize(env, inBatch, tokenSize, fn + ": inBatch");
		inToken.assign(b.data, b.data + b.size);
	}
	// The kernel never returns more elements than the map can hold: a larger count would only
	// size buffers for nothing.
	uint32_t want = *count;
	if (meta_.maxEntries > 0 && want > meta_.maxEntries)
		want = meta_.maxEntries;
	std::vector<uint8_t> outToken(tokenSize);
	std::vector<uint8_t> keys;
	std::vector<uint8_t> values;
	try {
		keys.resize(CheckedProduct(env, want, meta_.keySize, fn + ": count"));
		values.resize(CheckedProduct(env, want, meta_.valueBufSize, fn + ": count"));
	} catch (const std::bad_alloc &) {
		// Only Napi::Error becomes a JS exception; anything else would abort the process.
		ThrowBpfError(env, fn, ENOMEM, {"count " + std::to_string(want) + " is too large", {}, {}, {}});
	}

	bpf_map_batch_opts opts;
	InitOpts(opts);
	__u32 n = want;
	bool exhausted = false;
	if (bpf_map_lookup_batch(fd, inToken.empty() ? nullptr : inToken.data(), outToken.data(),
				 keys.data(), values.data(), &n, &opts) < 0) {
		int err = errno;
		// ENOENT means "walked off the end of the map": the elements returned with it are
		// valid and there is no next batch.
		if (err != ENOENT)
			ThrowBpfError(env, "bpf_map_lookup_batch", err, {{}, {}, {}, n});
		exhausted = true;
	}

	Napi::Object out = Napi::Object::New(env);
	out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), n * meta_.keySize));
	out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), n * meta_.valueBufSize));
	out.Set("count", n);
	out.Set("nextBatch", exhausted ? env.Null()
				       : Napi::Buffer<uint8_t>::Copy(env, outToken.data(), tokenSize));
	return out;
}

Napi::Value BpfMap::UpdateBatch(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfMap.updateBatch";
	int fd = FdOrThrow(env, fn.c_str());
	uint32_t count = GetU32(env, info[2], fn + ": count");
	ByteView keys = GetBytesOfSize(env, info[0], CheckedProduct(env, count, meta_.keySize, fn),
				       fn + ": keys");
	ByteView values = GetBytesOfSize(
		env, info[1], CheckedProduct(env, count, meta_.valueBufSize, fn), fn + ": values");
	uint64_t flags = 0;
	if (info.Length() > 3 && !info[3].IsUndefined())
		flags = GetU64(env, info[3], fn + ": flags");
	if (count == 0)
		return Napi::Number::New(env, 0);

	bpf_map_batch_opts opts;
	InitOpts(opts);
	opts.elem_flags = flags;
	__u32 n = count;
	if (bpf_map_update_batch(fd, keys.data, values.data, &n, &opts) < 0)
		ThrowBpfError(env, "bpf_map_update_batch", errno, {{}, {}, {}, n});
	return Napi::Number::New(env, n);
}

Napi::Value BpfMap::DeleteBatch(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfMap.deleteBatch";
	int fd = FdOrThrow(env, fn.c_str());
	uint32_t count = GetU32(env, info[1], fn + ": count");
	ByteView keys = GetBytesOfSize(env, info[0], CheckedProduct(env, count, meta_.keySize, fn),
				       fn + ": keys");
	if (count == 0)
		return Napi::Number::New(env, 0);

	bpf_map_batch_opts opts;
	InitOpts(opts);
	__u32 n = count;
	if (bpf_map_delete_batch(fd, keys.data, &n, &opts) < 0)
		ThrowBpfError(env, "bpf_map_delete_batch", errno, {{}, {}, {}, n});
	return Napi::Number::New(env, n);
}

// ---- lifetime ----------------------------------------------------------------------------------

Napi::Value BpfMap::Pin(const Napi::CallbackInfo &info)
{
	PinTo(info.Env(), info[0], "BpfMap.pin");
	return info.Env().Undefined();
}

Napi::Value BpfMap::Close(const Napi::CallbackInfo &info)
{
	Release(false);
	return info.Env().Undefined();
}

} // namespace tenet
