import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor.js';
import protojson from 'protobufjs/ext/protojson.js';
const root = new protobuf.Root();
root.resolvePath = (origin, target) => target.startsWith('/') ? target : '/work/main/agent/proto/' + target;
root.loadSync('tenet/v1/api.proto'); root.resolveAll();
const Port = root.lookupType('tenet.v1.Port');
const m = Port.fromObject({ name: 'p', vsid: 5000, addresses: ['a'], mtu: 1400 });
const buf = Port.encode(m).finish();
const d = Port.decode(buf);
console.log(d, Port.toObject(d, {}), Port.toObject(Port.decode(Port.encode(Port.fromObject({name:'x'})).finish())));
console.log(protojson.toJson(Port, d));
const Resp = root.lookupType('tenet.v1.ListLookupRecordsResponse');
const r = Resp.fromObject({ version: '12345678901234567', totalSize: 3 });
console.log(protojson.toJson(Resp, Resp.decode(Resp.encode(r).finish())), Resp.toObject(Resp.decode(Resp.encode(r).finish()), {longs: String}));
const set = root.toDescriptor('proto3');
console.log(set.file.map(f => [f.name, f.package, f.dependency, f.messageType.length, f.service.length]));
try { Port.decode(Buffer.from([0x0a, 0xff, 0xff, 0xff])); } catch (e) { console.log('decode err', e.message); }
try { console.log(Port.decode(Buffer.from([0x08, 0x05]))); } catch (e) { console.log('decode err2', e.message); }
try { console.log(Port.decode(Buffer.from([0x28, 0x05, 0x2a, 0x01, 0x41]))); } catch (e) { console.log('decode err3', e.message); }
