/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The NVGRE FlowID (RFC 7637 section 3.1): 8 bits of per-flow entropy in the low byte of the GRE
 * key, so that underlay ECMP and the receiver's RSS can spread the flows of one virtual subnet.
 * Every packet of a flow must get the same FlowID on every host and after every reload, so this is
 * a fixed function of the inner headers: not skb->hash, whose seed is random per boot.
 *
 * Definition (agent/model/flow-hash.ts computes the same):
 *   words, each four bytes read big-endian:
 *     IPv4: saddr, daddr, ports, proto
 *     IPv6: saddr[0..3], daddr[0..3], ports, proto
 *   ports = sport << 16 | dport for TCP and UDP when the ports are in the packet and it is not an
 *           IPv4 fragment (so all fragments of a datagram share the FlowID); 0 otherwise
 *   proto = the IPv4 protocol or the IPv6 fixed header's next header
 *   h = 0x811c9dc5; for each word w: h = (h ^ w) * 0x01000193 (mod 2^32)      (FNV-1a by words)
 *   h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13; h *= 0xc2b2ae35; h ^= h >> 16  (murmur3 fmix32)
 *   FlowID = h & 0xff
 * The words make it cheap in BPF (no byte loop); the finaliser spreads every input bit over the
 * low byte.
 */
#ifndef TENET_LIB_FLOW_HASH_H
#define TENET_LIB_FLOW_HASH_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

#define TENET_FNV_BASIS 0x811c9dc5u
#define TENET_FNV_PRIME 0x01000193u

static __always_inline __u32 tenet_fnv_word(__u32 h, __be32 w)
{
	return (h ^ bpf_ntohl(w)) * TENET_FNV_PRIME;
}

static __always_inline __u32 tenet_fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/*
 * saddr/daddr: the inner addresses (4 or 16 bytes, network order, 4-byte aligned copies);
 * words: 1 (IPv4) or 4 (IPv6); sport/dport network order, 0 when not used.
 */
static __always_inline __u8 tenet_flow_id(const __be32 *saddr, const __be32 *daddr, int words,
					  __be16 sport, __be16 dport, __u8 proto)
{
	__u32 h = TENET_FNV_BASIS;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		if (i < words)
			h = tenet_fnv_word(h, saddr[i]);
#pragma unroll
	for (i = 0; i < 4; i++)
		if (i < words)
			h = tenet_fnv_word(h, daddr[i]);
	h = tenet_fnv_word(h, bpf_htonl(((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport)));
	h = tenet_fnv_word(h, bpf_htonl(proto));
	return tenet_fmix32(h) & 0xff;
}

#endif /* TENET_LIB_FLOW_HASH_H */
