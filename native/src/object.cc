// SPDX-License-Identifier: Apache-2.0
#include "object.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_log.h"
#include "libbpf_opts.h"
#include "map.h"
#include "program.h"
#include "unique_fd.h"

namespace tenet {

// Default verifier log size. The kernel fails a load with ENOSPC (instead of the real error) when
// the log does not fit, so this is generous; rejected loads of large programs may need more.
static constexpr size_t kDefaultLogSize = 4u << 20;
static constexpr size_t kMinLogSize = 4096;
// The kernel rejects verifier log buffers above UINT_MAX >> 2 bytes.
static constexpr size_t kMaxLogSize = UINT32_MAX >> 2;

thread_local BpfObject::Init *BpfObject::pending_ = nullptr;

// Runs bpf_object__load off the JS thread and settles the promise load() returned.
class LoadWorker : public Napi::AsyncWorker {
public:
	LoadWorker(BpfObject *owner, Napi::Promise::Deferred deferred)
		: Napi::AsyncWorker(owner->Env(), "tenet:BpfObject.load"), owner_(owner),
		  // Keeps the JS object (and so the bpf_object) alive until OnOK.
		  ownerRef_(Napi::Persistent(owner->Value())), obj_(owner->obj_), deferred_(deferred)
	{
	}

	void Execute() override
	{
		// libbpf's messages for this load are printed on this worker thread.
		LibbpfCapture capture;
		int ret = bpf_object__load(obj_);
		err_ = ret < 0 ? -ret : 0;
		libbpfLog_ = capture.text();
		summary_ = capture.Summary();
	}

	void OnOK() override
	{
		std::string log;
		if (err_ != 0 && !owner_->logBuf_.empty()) {
			const char *buf = owner_->logBuf_.data();
			log.assign(buf, strnlen(buf, owner_->logBuf_.size()));
		}
		owner_->LoadFinished(err_ == 0);
		try {
			Settle(log);
		} catch (const Napi::Error &) {
			// The environment is being torn down (a worker exiting with a load in flight):
			// JS can no longer run and nobody is left to observe the promise. The object
			// itself was released above.
		}
	}

private:
	void Settle(const std::string &log)
	{
		Napi::Env env = Env();
		if (err_ == 0) {
			deferred_.Resolve(env.Undefined());
			return;
		}
		ErrorDetails d;
		d.detail = summary_;
		if (!log.empty())
			d.log = log;
		if (!libbpfLog_.empty())
			d.libbpfLog = libbpfLog_;
		deferred_.Reject(MakeBpfError(env, "bpf_object__load", err_, d).Value());
	}

	BpfObject *owner_;
	Napi::ObjectReference ownerRef_;
	bpf_object *obj_;
	Napi::Promise::Deferred deferred_;
	int err_ = 0;
	std::string libbpfLog_;
	std::string summary_;
};

BpfObject::BpfObject(const Napi::CallbackInfo &info)
	: Napi::ObjectWrap<BpfObject>(info), Handle(info.Env())
{
	if (!pending_)
		ThrowTypeError(info.Env(),
			       "BpfObject cannot be constructed directly: use BpfObject.open()");
	obj_ = pending_->obj;
	logBuf_ = std::move(pending_->logBuf);
	path_ = std::move(pending_->path);
	pending_->obj = nullptr; // ownership taken
	pending_ = nullptr;
}

BpfObject::~BpfObject() { Release(true); }

void BpfObject::Release(bool teardown) noexcept
{
	if (loading_) {
		// The worker thread is inside bpf_object__load on obj_; freeing it now would be a
		// use-after-free. LoadFinished() completes the close. At environment teardown the
		// worker's completion never runs: the object is leaked (the process is exiting).
		closeRequested_ = true;
		if (teardown)
			Unregister();
		return;
	}
	if (obj_) {
		bpf_object__close(obj_);
		obj_ = nullptr;
	}
	std::vector<char>().swap(logBuf_);
	Unregister();
}

Napi::Function BpfObject::Define(Napi::Env env)
{
	return DefineClass(env, "BpfObject",
			   {
				   StaticMethod<&BpfObject::Open>("open"),
				   InstanceMethod<&BpfObject::Load>("load"),
				   InstanceMethod<&BpfObject::MapNames>("mapNames"),
				   InstanceMethod<&BpfObject::ProgramNames>("programNames"),
				   InstanceMethod<&BpfObject::Map>("map"),
				   InstanceMethod<&BpfObject::Program>("program"),
				   InstanceMethod<&BpfObject::InitialValue>("initialValue"),
				   InstanceMethod<&BpfObject::WriteInitialValue>(
					   "writeInitialValue"),
				   InstanceMethod<&BpfObject::SetMaxEntries>("setMaxEntries"),
				   InstanceMethod<&BpfObject::Close>("close"),
				   InstanceAccessor<&BpfObject::GetLoaded>("loaded"),
				   InstanceAccessor<&BpfObject::GetClosed>("closed"),
				   InstanceAccessor<&BpfObject::GetPath>("path"),
			   });
}

Napi::Value BpfObject::Open(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const std::string fn = "BpfObject.open";
	std::string path = GetString(env, info[0], fn + ": path");
	Napi::Object o = GetOptions(info, 1, fn + ": options");
	auto pinRoot = OptString(o, "pinRoot", fn);
	size_t logSize = OptU32(o, "logSize", fn).value_or(kDefaultLogSize);
	if (logSize < kMinLogSize)
		logSize = kMinLogSize;
	if (logSize > kMaxLogSize)
		ThrowTypeError(env, fn + ": logSize must be at most " + std::to_string(kMaxLogSize) +
					    " (the kernel's limit)");
	uint32_t logLevel = OptU32(o, "logLevel", fn).value_or(0);

	std::vector<std::pair<std::string, std::string>> pinPaths;
	Napi::Value pp = OptValue(o, "mapPinPaths");
	if (!pp.IsEmpty()) {
		if (!pp.IsObject() || pp.IsArray())
			ThrowTypeError(env, fn + ": mapPinPaths must be an object of map name to path");
		Napi::Object ppo = pp.As<Napi::Object>();
		Napi::Array names = ppo.GetPropertyNames();
		for (uint32_t i = 0; i < names.Length(); i++) {
			std::string name = names.Get(i).ToString().Utf8Value();
			pinPaths.emplace_back(
				name, GetString(env, ppo.Get(name), fn + ": mapPinPaths." + name));
		}
	}

	Init init{nullptr, {}, path};
	try {
		init.logBuf.assign(logSize, '\0');
	} catch (const std::bad_alloc &) {
		// Only Napi::Error becomes a JS exception; anything else would abort the process.
		ThrowBpfError(env, fn, ENOMEM, {"logSize " + std::to_string(logSize), {}, {}, {}});
	}
	bpf_object_open_opts opts;
	InitOpts(opts);
	if (pinRoot)
		opts.pin_root_path = pinRoot->c_str();
	// With log level 0 libbpf loads without a log and, only if a load fails, retries it with
	// level 1 into this buffer: successful loads pay nothing for it.
	opts.kernel_log_buf = init.logBuf.data();
	opts.kernel_log_size = init.logBuf.size();
	opts.kernel_log_level = logLevel;

	LibbpfCapture capture;
	init.obj = bpf_object__open_file(path.c_str(), &opts);
	if (!init.obj) {
		int err = errno;
		ErrorDetails d;
		d.detail = path;
		if (!capture.text().empty())
			d.libbpfLog = capture.text();
		ThrowBpfError(env, "bpf_object__open_file", err, d);
	}
	// From here on init.obj must be closed on every error path until the handle owns it.
	struct Closer {
		Init &init;
		~Closer()
		{
			if (init.obj)
				bpf_object__close(init.obj);
		}
	} closer{init};

	for (const auto &[name, pinPath] : pinPaths) {
		bpf_map *map = bpf_object__find_map_by_name(init.obj, name.c_str());
		if (!map)
			ThrowBpfError(env, "bpf_object__find_map_by_name", ENOENT,
				      {"mapPinPaths: no map named '" + name + "' in " + path, {}, {},
				       {}});
		if (bpf_map__set_pin_path(map, pinPath.c_str()) < 0)
			ThrowBpfError(env, "bpf_map__set_pin_path", errno, {name, {}, {}, {}});
	}

	pending_ = &init;
	Napi::Object obj;
	try {
		obj = AddonData::Get(env).objectCtor.New({});
	} catch (...) {
		pending_ = nullptr;
		throw;
	}
	pending_ = nullptr;
	return obj;
}

bpf_object *BpfObject::ObjOrThrow(Napi::Env env, const char *method) const
{
	if (!obj_ || closeRequested_)
		ThrowClosed(env, method);
	if (loading_)
		ThrowBpfError(env, method, EBUSY, {"load() in progress", {}, {}, {}});
	return obj_;
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
	try {
		ObjOrThrow(env, "BpfObject.load");
		if (loadAttempted_)
			// libbpf refuses a second attempt even after a failed one.
			ThrowBpfError(env, "BpfObject.load", EALREADY,
				      {"load() can be attempted only once per open()", {}, {}, {}});
	} catch (const Napi::Error &e) {
		// load() reports every failure through its promise, never synchronously.
		deferred.Reject(e.Value());
		return deferred.Promise();
	}
	if (!logBuf_.empty())
		logBuf_[0] = '\0';
	loading_ = true;
	auto *worker = new LoadWorker(this, deferred);
	worker->Queue();
	return deferred.Promise();
}

void BpfObject::LoadFinished(bool ok)
{
	loading_ = false;
	loadAttempted_ = true;
	loaded_ = ok;
	if (closeRequested_)
		Release(false);
}

Napi::Value BpfObject::MapNames(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_object *obj = ObjOrThrow(env, "BpfObject.mapNames");
	Napi::Array out = Napi::Array::New(env);
	uint32_t i = 0;
	bpf_map *map;
	bpf_object__for_each_map(map, obj) out.Set(i++, bpf_map__name(map));
	return out;
}

Napi::Value BpfObject::ProgramNames(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_object *obj = ObjOrThrow(env, "BpfObject.programNames");
	Napi::Array out = Napi::Array::New(env);
	uint32_t i = 0;
	bpf_program *prog;
	bpf_object__for_each_program(prog, obj) out.Set(i++, bpf_program__name(prog));
	return out;
}

Napi::Value BpfObject::Map(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_object *obj = ObjOrThrow(env, "BpfObject.map");
	std::string name = GetString(env, info[0], "BpfObject.map: name");
	bpf_map *map = bpf_object__find_map_by_name(obj, name.c_str());
	if (!map)
		ThrowBpfError(env, "BpfObject.map", ENOENT,
			      {"no map named '" + name + "' in " + path_, {}, {}, {}});
	int fd = bpf_map__fd(map);
	if (fd < 0)
		ThrowBpfError(env, "BpfObject.map", EINVAL,
			      {"map '" + name + "' has no fd: load() the object first", {}, {}, {}});
	UniqueFd dup = DupFd(fd);
	if (!dup.valid())
		ThrowBpfError(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
	return BpfMap::Adopt(env, std::move(dup));
}

Napi::Value BpfObject::Program(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_object *obj = ObjOrThrow(env, "BpfObject.program");
	std::string name = GetString(env, info[0], "BpfObject.program: name");
	bpf_program *prog = bpf_object__find_program_by_name(obj, name.c_str());
	if (!prog)
		ThrowBpfError(env, "BpfObject.program", ENOENT,
			      {"no program named '" + name + "' in " + path_, {}, {}, {}});
	int fd = bpf_program__fd(prog);
	if (fd < 0)
		ThrowBpfError(
			env, "BpfObject.program", EINVAL,
			{"program '" + name + "' has no fd: load() the object first", {}, {}, {}});
	UniqueFd dup = DupFd(fd);
	if (!dup.valid())
		ThrowBpfError(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
	return BpfProgram::Adopt(env, std::move(dup));
}

// bpf_map__set_max_entries before load: a map's capacity chosen at run time (tenetd's
// `capacity` setting). A map pinned by name under the pin root is reused only if its max_entries
// matches, so a different size makes the load fail with EINVAL unless the pin was moved aside.
Napi::Value BpfObject::SetMaxEntries(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const char *fn = "BpfObject.setMaxEntries";
	bpf_object *obj = ObjOrThrow(env, fn);
	std::string name = GetString(env, info[0], std::string(fn) + ": map");
	uint32_t n = GetU32(env, info[1], std::string(fn) + ": maxEntries");
	if (n == 0)
		ThrowTypeError(env, std::string(fn) + ": maxEntries must be positive");
	if (loadAttempted_)
		ThrowBpfError(env, fn, EBUSY,
			      {"the object was loaded: capacities are set before load()", {}, {}, {}});
	bpf_map *map = bpf_object__find_map_by_name(obj, name.c_str());
	if (!map)
		ThrowBpfError(env, fn, ENOENT, {"no map named '" + name + "' in " + path_, {}, {}, {}});
	int err = bpf_map__set_max_entries(map, n);
	if (err < 0)
		ThrowBpfError(env, "bpf_map__set_max_entries", -err, {name, {}, {}, {}});
	return env.Undefined();
}

// The initial contents of an internal map ('.rodata', '.data', '.bss', '.kconfig'): where the
// ELF's global variables live, `const volatile` load-time knobs among them.
static bpf_map *InternalMap(Napi::Env env, bpf_object *obj, const std::string &name,
			    const char *fn, const std::string &path, const void **data, size_t *size)
{
	bpf_map *map = bpf_object__find_map_by_name(obj, name.c_str());
	if (!map)
		ThrowBpfError(env, fn, ENOENT, {"no map named '" + name + "' in " + path, {}, {}, {}});
	*data = bpf_map__initial_value(map, size);
	if (!*data)
		ThrowBpfError(env, fn, EINVAL,
			      {"map '" + name +
				       "' has no initial value (only .rodata, .data, .bss and .kconfig do)",
			       {}, {}, {}});
	return map;
}

Napi::Value BpfObject::InitialValue(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const char *fn = "BpfObject.initialValue";
	bpf_object *obj = ObjOrThrow(env, fn);
	std::string name = GetString(env, info[0], std::string(fn) + ": map");
	const void *data = nullptr;
	size_t size = 0;
	InternalMap(env, obj, name, fn, path_, &data, &size);
	return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t *>(data), size);
}

Napi::Value BpfObject::WriteInitialValue(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const char *fn = "BpfObject.writeInitialValue";
	bpf_object *obj = ObjOrThrow(env, fn);
	std::string name = GetString(env, info[0], std::string(fn) + ": map");
	uint32_t offset = GetU32(env, info[1], std::string(fn) + ": offset");
	ByteView bytes = GetBytes(env, info[2], std::string(fn) + ": data");
	if (loadAttempted_)
		// After load .rodata is frozen in the kernel and mapped read-only here: a write
		// would fault, and would not reach the programs anyway.
		ThrowBpfError(env, fn, EBUSY,
			      {"the object was loaded: initial values are set before load()", {}, {},
			       {}});
	const void *data = nullptr;
	size_t size = 0;
	bpf_map *map = InternalMap(env, obj, name, fn, path_, &data, &size);
	if (static_cast<uint64_t>(offset) + bytes.size > size)
		ThrowTypeError(env, std::string(fn) + ": " + std::to_string(bytes.size) +
					    " bytes at offset " + std::to_string(offset) + " exceed " +
					    name + "'s " + std::to_string(size) + " bytes");
	if (bytes.size == 0)
		return env.Undefined();
	// libbpf hands the contents out read-only; the whole value is replaced through its setter.
	std::vector<uint8_t> next(static_cast<const uint8_t *>(data),
				  static_cast<const uint8_t *>(data) + size);
	memcpy(next.data() + offset, bytes.data, bytes.size);
	int err = bpf_map__set_initial_value(map, next.data(), next.size());
	if (err < 0)
		ThrowBpfError(env, "bpf_map__set_initial_value", -err, {name, {}, {}, {}});
	return env.Undefined();
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo &info)
{
	Release(false);
	return info.Env().Undefined();
}

Napi::Value BpfObject::GetLoaded(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), loaded_ && obj_ != nullptr);
}

Napi::Value BpfObject::GetClosed(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), obj_ == nullptr || closeRequested_);
}

Napi::Value BpfObject::GetPath(const Napi::CallbackInfo &info)
{
	return Napi::String::New(info.Env(), path_);
}

} // namespace tenet
