/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The port ACL stage (abi/acl.h, docs/acl.md): tenet_acl() decides whether a packet may leave a
 * VM (outbound, at tc ingress of its port, lib/forward.h) or reach one (inbound, at host-local
 * delivery in lib/forward.h and at NVGRE decapsulation in lib/nvgre.h). It owns the ACL maps,
 * the flow extraction (IPv4, IPv6 with a bounded walk over extension headers, TCP/UDP ports, ICMP
 * echo identifiers and the packet embedded in ICMP errors), connection tracking for stateful
 * rules, the verdicts of first fragments, and the per-rule and per-stage counters.
 *
 * In order, for a port that has rules in the packet's direction (else: allowed, nothing done):
 *   1. a non-first fragment takes its first fragment's stored verdict, or is dropped;
 *   2. a reply of a live tracked flow is admitted; so is an ICMP error about one;
 *   3. the rules classify it (bitmap AND, no walk over rules): the deciding rule's action, or
 *      allow when none matches; an allowing stateful rule creates or refreshes the flow's entry;
 *   4. a first fragment's verdict is stored for the later ones.
 * Packets are read with load_bytes helpers at offsets, so the same code serves XDP (before the
 * decapsulation moves the frame) and tc.
 */
#ifndef TENET_LIB_ACL_H
#define TENET_LIB_ACL_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/acl.h"
#include "abi/counters.h"
#include "abi/drop_reasons.h"
#include "abi/maps.h"
#include "abi/policy.h"
#include "lib/ctx.h"

/* IPv6 extension headers walked to find the L4 header and the fragment header. */
#define TENET_ACL_V6_EXT_MAX 6

#define TENET_NEXTHDR_HOP 0
#define TENET_NEXTHDR_ROUTING 43
#define TENET_NEXTHDR_FRAGMENT 44
#define TENET_NEXTHDR_AUTH 51
#define TENET_NEXTHDR_DEST 60

/*
 * Ports with rules. Key: __u32 ifindex of the host-side VM port. Value: struct tenet_acl_port
 * (the rule set of each direction). Written by the agent: one update flips a port to a new rule
 * set. Read once per packet at each ACL point. A hash: ifindexes are sparse; a port without an
 * entry has no ACL and allows everything.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tenet_acl_port);
	__uint(max_entries, TENET_PORTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_PORTS SEC(".maps");

/*
 * Field tables of all rule sets. Key: struct tenet_acl_field_key (rule set, field, value prefix).
 * Value: struct tenet_acl_bits, the rules the value admits. Written by the agent's ACL compiler
 * (agent/compiler/acl.ts), read two to six times per classified packet. An LPM trie: addresses are
 * prefixes, port ranges are compiled into prefixes, and exact fields (protocol, MAC, VSID) are
 * full-length prefixes with a /0 wildcard entry; lookup cost depends on the key length, not on the
 * number of rules. Not preallocated (kernel requirement), so only written entries cost memory.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tenet_acl_field_key);
	__type(value, struct tenet_acl_bits);
	__uint(max_entries, TENET_ACL_FIELDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_FIELDS SEC(".maps");

/*
 * Rules. Key: struct tenet_acl_rule_key (rule set, rank). Value: struct tenet_acl_rule (action,
 * stateful, idle timeout). Written by the agent with the rule set; read once for the deciding
 * rule. A preallocated hash: rule set ids are sparse.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tenet_acl_rule_key);
	__type(value, struct tenet_acl_rule);
	__uint(max_entries, TENET_ACL_HOST_RULES_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_RULES SEC(".maps");

/*
 * Per-rule hit counters. Key: struct tenet_acl_rule_key. Value: struct tenet_counter (packets and
 * frame bytes the rule decided). Created zero by the agent with the rule set (the datapath never
 * inserts, so a stale rank cannot create entries), bumped by the datapath, read at scrape time and
 * deleted with the rule set. Per-CPU: plain adds.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct tenet_acl_rule_key);
	__type(value, struct tenet_counter);
	__uint(max_entries, TENET_ACL_HOST_RULES_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_RULE_CTRS SEC(".maps");

/*
 * Connection tracking of stateful rules. Key: struct tenet_acl_ct_key (port, flow as local and
 * remote). Value: struct tenet_acl_ct. Written by the datapath when a stateful rule allows a
 * packet, read for every classified packet (replies are admitted). An LRU hash: when full, the
 * least recently used flow is evicted and its replies become new traffic (counted as CT_MISS;
 * inserts are counted, so evictions = inserts - entries). Idle entries are not deleted but read
 * as absent. Sized at load time (tenetd config); survives agent restarts and rule changes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tenet_acl_ct_key);
	__type(value, struct tenet_acl_ct);
	__uint(max_entries, TENET_ACL_CT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_CT SEC(".maps");

/*
 * Verdicts of first fragments. Key: struct tenet_acl_frag_key (port, direction, addresses,
 * protocol, IP id). Value: struct tenet_acl_frag. Written by the datapath for every first
 * fragment classified, read by the later fragments (which have no ports to classify). An LRU
 * hash: datagrams in flight are few and short-lived; an evicted one drops its later fragments.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tenet_acl_frag_key);
	__type(value, struct tenet_acl_frag);
	__uint(max_entries, TENET_ACL_FRAGS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_FRAGS SEC(".maps");

/*
 * ACL statistics. Key: __u32 enum tenet_acl_stat. Value: struct tenet_counter. Written by the
 * datapath, read by the agent (metrics). A per-CPU array: dense, no atomics.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_counter);
	__uint(max_entries, TENET_ACL_STAT_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_STATS SEC(".maps");

/*
 * Scratch. Key: __u32 0. Value: struct tenet_acl_scratch. The classifier's working space, off the
 * stack (the forwarding path already uses much of it). Per-CPU array of one: programs do not nest.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_acl_scratch);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ACL_SCRATCH SEC(".maps");

const volatile enum tenet_acl_dir tenet_btf_acl_dir = TENET_ACL_IN;
const volatile enum tenet_acl_field tenet_btf_acl_field = TENET_ACL_F_REMOTE4;
const volatile enum tenet_acl_action tenet_btf_acl_action = TENET_ACL_ALLOW;
const volatile enum tenet_acl_rule_flags tenet_btf_acl_rule_flags = TENET_ACL_RULE_STATEFUL;
const volatile enum tenet_acl_stat tenet_btf_acl_stat = TENET_ACL_STAT_NO_MATCH;

static __always_inline void tenet_acl_stat(__u32 slot, __u32 len)
{
	struct tenet_counter *c = bpf_map_lookup_elem(&TENET_MAP_ACL_STATS, &slot);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline void tenet_acl_count_rule(__u32 rsid, __u32 rank, __u32 len)
{
	struct tenet_acl_rule_key k = { .rsid = rsid, .rank = rank };
	struct tenet_counter *c;

	if (rank == TENET_ACL_NO_RULE)
		return;
	c = bpf_map_lookup_elem(&TENET_MAP_ACL_RULE_CTRS, &k);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/*
 * Index of the lowest set bit of x (x != 0): the population count of the bits below it, counted
 * without branches (SWAR). Branch-free on purpose: a binary search would hand the verifier a
 * precise constant per outcome and multiply the states it explores in the bitmap loop.
 */
static __always_inline __u32 tenet_ctz64(__u64 x)
{
	__u64 y = (x & -x) - 1;

	y = y - ((y >> 1) & 0x5555555555555555ULL);
	y = (y & 0x3333333333333333ULL) + ((y >> 2) & 0x3333333333333333ULL);
	y = (y + (y >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (y * 0x0101010101010101ULL) >> 56;
}

/* Copies len bytes at offset off of the frame; kind is enum tenet_ctx_kind, a constant. */
static __always_inline long tenet_acl_load(void *raw, __u32 kind, __u32 off, void *to, __u32 len)
{
	if (kind == TENET_CTX_XDP)
		return bpf_xdp_load_bytes(raw, off, to, len);
	return bpf_skb_load_bytes(raw, off, to, len);
}

static __always_inline struct tenet_acl_scratch *tenet_acl_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&TENET_MAP_ACL_SCRATCH, &zero);
}

/*
 * The rules a field admits for the value of bits bits at data, or NULL if the rule set lacks the
 * field. fk->rsid is set by the caller.
 */
static __always_inline const struct tenet_acl_bits *
tenet_acl_lookup(struct tenet_acl_field_key *fk, __u8 field, const void *data, __u32 bits)
{
	fk->field = field;
	fk->prefixlen = TENET_ACL_FIELD_FIXED_BITS + bits;
	__builtin_memset(fk->data, 0, sizeof(fk->data));
	if (bits == 128)
		__builtin_memcpy(fk->data, data, 16);
	else if (bits == 48)
		__builtin_memcpy(fk->data, data, 6);
	else
		__builtin_memcpy(fk->data, data, 4);
	return bpf_map_lookup_elem(&TENET_MAP_ACL_FIELDS, fk);
}

/* Every rule of the packet's direction leaves field open: no lookup needed. */
static __always_inline int tenet_acl_open(const struct tenet_acl_scratch *s, __u32 field)
{
	return (s->open_fields >> field) & 1;
}

/* Lowest set bit of the candidate words in s->cand, cleared; the word index or -1 if none. */
static __always_inline int tenet_acl_next_cand(struct tenet_acl_scratch *s)
{
	__u32 k;
	__u64 x;

	if (s->cand[0])
		k = 0;
	else if (s->cand[1])
		k = 1;
	else if (s->cand[2])
		k = 2;
	else
		return -1;
	x = s->cand[k];
	s->cand[k] = x & (x - 1);
	return k * 64 + tenet_ctz64(x);
}

/*
 * Classification, first half: the remote address, local address and protocol+local port
 * bitmaps. Their summaries' AND gives the candidate words; acc gets the AND of their words there,
 * and candidates whose AND is zero are dropped. Three pointers, so they stay in registers.
 */
static __always_inline int tenet_acl_match_a(struct tenet_acl_scratch *s)
{
	const struct tenet_acl_bits *b0, *b1, *b2;
	struct tenet_acl_field_key *fk = &s->fk;
	int v6 = s->flow.family == TENET_AF_IPV6;
	__u32 i, k;
	__u64 x;
	int w;

	fk->rsid = s->rsid;
	fk->pad[0] = fk->pad[1] = fk->pad[2] = 0;
	b0 = tenet_acl_lookup(fk, v6 ? TENET_ACL_F_REMOTE6 : TENET_ACL_F_REMOTE4, s->flow.raddr,
			      v6 ? 128 : 32);
	if (!b0)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	/* A field every rule leaves open admits all: b0 stands in for it (AND is idempotent). */
	b1 = b0;
	if (!tenet_acl_open(s, v6 ? TENET_ACL_F_LOCAL6 : TENET_ACL_F_LOCAL4)) {
		b1 = tenet_acl_lookup(fk, v6 ? TENET_ACL_F_LOCAL6 : TENET_ACL_F_LOCAL4,
				      s->flow.laddr, v6 ? 128 : 32);
		if (!b1)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
	}
	/* protocol and port, 24 bits: the 4-byte copy's last byte is masked by the prefix. */
	s->l4[0] = s->flow.proto;
	__builtin_memcpy(&s->l4[1], &s->sport, 2);
	b2 = b0;
	if (!tenet_acl_open(s, TENET_ACL_F_PROTO_LPORT)) {
		b2 = tenet_acl_lookup(fk, TENET_ACL_F_PROTO_LPORT, s->l4, 24);
		if (!b2)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
	}
	for (k = 0; k < TENET_ACL_SUMMARY_WORDS; k++) {
		s->sum[k] = b0->summary[k] & b1->summary[k] & b2->summary[k];
		s->cand[k] = s->sum[k];
	}
	for (i = 0; i < TENET_ACL_WORDS; i++) {
		w = tenet_acl_next_cand(s);
		if (w < 0 || w >= TENET_ACL_WORDS)
			break;
		x = b0->words[w] & b1->words[w] & b2->words[w];
		s->acc[w] = x;
		if (!x)
			s->sum[w >> 6] &= ~(1ULL << (w & 63));
	}
	return 0;
}

/*
 * Second half: protocol+remote port, remote MAC and VSID. The first candidate word whose AND
 * with acc is non-zero holds the deciding rule: s->rank, or TENET_ACL_NO_RULE.
 */
static __always_inline int tenet_acl_match_b(struct tenet_acl_scratch *s)
{
	const struct tenet_acl_bits *b3, *b4, *b5;
	struct tenet_acl_field_key *fk = &s->fk;
	__u32 i, k;
	__u64 x;
	int w;

	s->rank = TENET_ACL_NO_RULE;
	if (!(s->sum[0] | s->sum[1] | s->sum[2]))
		return 0;
	fk->rsid = s->rsid;
	fk->pad[0] = fk->pad[1] = fk->pad[2] = 0;
	s->l4[0] = s->flow.proto;
	__builtin_memcpy(&s->l4[1], &s->dport, 2);
	b3 = tenet_acl_lookup(fk, TENET_ACL_F_PROTO_RPORT, s->l4, 24);
	if (!b3)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	b4 = b3;
	if (!tenet_acl_open(s, TENET_ACL_F_RMAC)) {
		b4 = tenet_acl_lookup(fk, TENET_ACL_F_RMAC, s->rmac, 48);
		if (!b4)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
	}
	b5 = b3;
	if (!tenet_acl_open(s, TENET_ACL_F_VSID)) {
		k = bpf_htonl(s->remote_vsid);
		__builtin_memcpy(s->l4, &k, 4);
		b5 = tenet_acl_lookup(fk, TENET_ACL_F_VSID, s->l4, 32);
		if (!b5)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
	}
	for (k = 0; k < TENET_ACL_SUMMARY_WORDS; k++)
		s->cand[k] = s->sum[k] & b3->summary[k] & b4->summary[k] & b5->summary[k];
	for (i = 0; i < TENET_ACL_WORDS; i++) {
		w = tenet_acl_next_cand(s);
		if (w < 0 || w >= TENET_ACL_WORDS)
			break;
		x = s->acc[w] & b3->words[w] & b4->words[w] & b5->words[w];
		if (x) {
			s->rank = w * 64 + tenet_ctz64(x);
			break;
		}
	}
	return 0;
}

/* Two bytes in network order as a __be16, read bytewise (no alignment needed). */
static __always_inline __be16 tenet_acl_be16(const __u8 *p)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (__be16)(p[0] | p[1] << 8);
#else
	return (__be16)(p[0] << 8 | p[1]);
#endif
}

/*
 * Reads the L4 header at s->l4_off for protocol proto into s->sport/dport (TCP/UDP ports, ICMP
 * echo identifier as sport) and s->l4_err (an ICMP error).
 */
static __always_inline int tenet_acl_l4(void *raw, __u32 kind, struct tenet_acl_scratch *s,
					__u8 proto, __u8 family)
{
	__u8 type;

	s->sport = 0;
	s->dport = 0;
	s->l4_err = 0;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (tenet_acl_load(raw, kind, s->l4_off, s->l4, 4) < 0)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
		s->sport = tenet_acl_be16(&s->l4[0]);
		s->dport = tenet_acl_be16(&s->l4[2]);
		return 0;
	}
	if (!((proto == IPPROTO_ICMP && family == TENET_AF_IPV4) ||
	      (proto == IPPROTO_ICMPV6 && family == TENET_AF_IPV6)))
		return 0;
	if (tenet_acl_load(raw, kind, s->l4_off, s->l4, 8) < 0)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	type = s->l4[0];
	if (family == TENET_AF_IPV4) {
		if (type == 8 || type == 0) /* echo request, reply */
			s->sport = tenet_acl_be16(&s->l4[4]);
		else if (type == 3 || type == 11 || type == 12)
			s->l4_err = 1; /* unreachable, time exceeded, parameter problem */
	} else {
		if (type == 128 || type == 129)
			s->sport = tenet_acl_be16(&s->l4[4]);
		else if (type >= 1 && type <= 4)
			s->l4_err = 1;
	}
	return 0;
}

/* Copies the addresses of the IP header in s->hdr to s->saddr/daddr; sets proto and l4_off. */
static __always_inline void tenet_acl_ip_addrs(struct tenet_acl_scratch *s, __u8 family,
					       __u32 l3_off)
{
	__builtin_memset(s->saddr, 0, 16);
	__builtin_memset(s->daddr, 0, 16);
	if (family == TENET_AF_IPV4) {
		struct iphdr *iph = (void *)s->hdr;

		__builtin_memcpy(s->saddr, &iph->saddr, 4);
		__builtin_memcpy(s->daddr, &iph->daddr, 4);
		s->proto = iph->protocol;
		s->l4_off = l3_off + iph->ihl * 4;
	} else {
		struct ipv6hdr *ip6h = (void *)s->hdr;

		__builtin_memcpy(s->saddr, &ip6h->saddr, 16);
		__builtin_memcpy(s->daddr, &ip6h->daddr, 16);
		s->proto = ip6h->nexthdr;
		s->l4_off = l3_off + sizeof(*ip6h);
	}
}

static __always_inline int tenet_acl_is_v6_ext(__u8 proto)
{
	return proto == TENET_NEXTHDR_HOP || proto == TENET_NEXTHDR_ROUTING ||
	       proto == TENET_NEXTHDR_FRAGMENT || proto == TENET_NEXTHDR_AUTH ||
	       proto == TENET_NEXTHDR_DEST;
}

/* Orients addresses and ports of the header just read as (local, remote) into key. */
static __always_inline void tenet_acl_orient(struct tenet_acl_scratch *s,
					     struct tenet_acl_ct_key *key, __u8 dir)
{
	if (dir == TENET_ACL_OUT) {
		__builtin_memcpy(key->laddr, s->saddr, 16);
		__builtin_memcpy(key->raddr, s->daddr, 16);
		key->lport = s->sport;
		key->rport = s->dport;
	} else {
		__builtin_memcpy(key->laddr, s->daddr, 16);
		__builtin_memcpy(key->raddr, s->saddr, 16);
		key->lport = s->dport;
		key->rport = s->sport;
	}
	/* ICMP echo: the identifier is the local "port" in both directions. */
	if (s->proto != IPPROTO_TCP && s->proto != IPPROTO_UDP) {
		key->lport = s->sport;
		key->rport = 0;
	}
}

/*
 * The IP header at l3_off and, for IPv6, up to TENET_ACL_V6_EXT_MAX extension headers: addresses
 * in saddr/daddr, the L4 protocol and offset, the fragment kind and identification.
 */
static __always_inline int tenet_acl_parse_ip(void *raw, __u32 kind, __u32 l3_off, __u8 family,
					      struct tenet_acl_scratch *s)
{
	int i;

	s->frag_kind = 0;
	s->icmp_err = 0;
	s->frag.id = 0;
	if (family == TENET_AF_IPV4) {
		struct iphdr *iph = (void *)s->hdr;
		__u16 frag;

		if (tenet_acl_load(raw, kind, l3_off, s->hdr, sizeof(*iph)) < 0)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
		tenet_acl_ip_addrs(s, family, l3_off);
		frag = bpf_ntohs(iph->frag_off);
		if (frag & 0x3fff) {
			s->frag.id = bpf_ntohs(iph->id);
			s->frag_kind = (frag & 0x1fff) ? 2 : 1;
		}
		return 0;
	}
	if (tenet_acl_load(raw, kind, l3_off, s->hdr, sizeof(struct ipv6hdr)) < 0)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	tenet_acl_ip_addrs(s, family, l3_off);
	for (i = 0; i < TENET_ACL_V6_EXT_MAX; i++) {
		__u8 *eh = s->hdr;

		if (!tenet_acl_is_v6_ext(s->proto))
			break;
		if (tenet_acl_load(raw, kind, s->l4_off, eh, 8) < 0)
			return -TENET_DROP_ACL_UNCLASSIFIABLE;
		if (s->proto == TENET_NEXTHDR_FRAGMENT) {
			s->frag.id = (__u32)eh[4] << 24 | (__u32)eh[5] << 16 | (__u32)eh[6] << 8 |
				     eh[7];
			s->frag_kind = (((eh[2] << 8) | eh[3]) & 0xfff8) ? 2 : 1;
			s->l4_off += 8;
		} else if (s->proto == TENET_NEXTHDR_AUTH) {
			s->l4_off += (eh[1] + 2) * 4;
		} else {
			s->l4_off += (eh[1] + 1) * 8;
		}
		s->proto = eh[0];
	}
	if (tenet_acl_is_v6_ext(s->proto))
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	return 0;
}

/*
 * After tenet_acl_parse_ip: the flow oriented by dir (s->flow, s->frag), the match ports in
 * sport/dport (zero unless TCP/UDP), and for ICMP errors the embedded flow (icmp_err).
 */
static __always_inline int tenet_acl_parse_l4(void *raw, __u32 kind, __u8 family, __u8 dir,
					      struct tenet_acl_scratch *s)
{
	int ret;

	s->sport = 0;
	s->dport = 0;
	s->l4_err = 0;
	if (s->frag_kind != 2) {
		ret = tenet_acl_l4(raw, kind, s, s->proto, family);
		if (ret < 0)
			return ret;
	}
	s->flow.family = family;
	s->flow.proto = s->proto;
	s->flow.pad[0] = s->flow.pad[1] = 0;
	tenet_acl_orient(s, &s->flow, dir);
	s->frag.family = family;
	s->frag.proto = s->proto;
	s->frag.dir = dir;
	s->frag.pad = 0;
	__builtin_memcpy(s->frag.laddr, s->flow.laddr, 16);
	__builtin_memcpy(s->frag.raddr, s->flow.raddr, 16);
	/* Ports for rule matching: TCP and UDP only, the local one in sport. */
	if (s->proto == IPPROTO_TCP || s->proto == IPPROTO_UDP) {
		s->sport = s->flow.lport;
		s->dport = s->flow.rport;
	} else {
		s->sport = 0;
		s->dport = 0;
	}
	if (!s->l4_err)
		return 0;

	/* ICMP error: the packet it quotes went the other way through this port. */
	if (tenet_acl_load(raw, kind, s->l4_off + 8, s->hdr,
			   family == TENET_AF_IPV4 ? sizeof(struct iphdr) :
						     sizeof(struct ipv6hdr)) < 0)
		return 0;
	tenet_acl_ip_addrs(s, family, s->l4_off + 8);
	if (tenet_acl_l4(raw, kind, s, s->proto, family) < 0)
		return 0;
	s->emb.family = family;
	s->emb.proto = s->proto;
	s->emb.pad[0] = s->emb.pad[1] = 0;
	tenet_acl_orient(s, &s->emb, dir == TENET_ACL_OUT ? TENET_ACL_IN : TENET_ACL_OUT);
	/* The error itself has no ports to match. */
	s->sport = 0;
	s->dport = 0;
	s->icmp_err = 1;
	return 0;
}

/* A tracked flow that has not been idle longer than its timeout. */
static __always_inline int tenet_acl_ct_live(const struct tenet_acl_ct *ct, __u64 now)
{
	return now - ct->last_seen_ns <= (__u64)ct->idle_timeout_s * 1000000000ULL;
}

/*
 * Stage 1: the port's rule set. Returns 0 when the port has no rules in this direction (allowed,
 * nothing else to do), 1 to go on, or a negated drop reason.
 */
__noinline int tenet_acl_prep(__u32 ifindex, __u32 dir, __u32 remote_vsid, __u32 len)
{
	const struct tenet_acl_port *ap;
	struct tenet_acl_scratch *s;
	__u32 rsid;

	ap = bpf_map_lookup_elem(&TENET_MAP_ACL_PORTS, &ifindex);
	if (!ap)
		return 0;
	rsid = dir == TENET_ACL_OUT ? ap->rsid[TENET_ACL_OUT] : ap->rsid[TENET_ACL_IN];
	if (!rsid)
		return 0;
	s = tenet_acl_scratch();
	if (!s)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	s->rsid = rsid;
	s->remote_vsid = remote_vsid;
	s->len = len;
	s->dir = dir & 1;
	s->open_fields = ap->open_fields >> (dir == TENET_ACL_OUT ? 16 : 0);
	s->flow.ifindex = ifindex;
	s->emb.ifindex = ifindex;
	s->frag.ifindex = ifindex;
	return 1;
}

/* Stage 2: the IP header and extension headers. meta: l3_off << 16 | family. 0 or a drop. */
static __always_inline int tenet_acl_read_ip(void *raw, __u32 kind, __u32 meta)
{
	struct tenet_acl_scratch *s = tenet_acl_scratch();
	__u32 l3_off = meta >> 16;

	if (!s || l3_off < 14)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	return tenet_acl_parse_ip(raw, kind, l3_off, meta & 0xff, s);
}

/* Stage 3: the L4 header, an ICMP error's quoted packet, the remote MAC. 0 or a drop. */
static __always_inline int tenet_acl_read_l4(void *raw, __u32 kind, __u32 meta)
{
	struct tenet_acl_scratch *s = tenet_acl_scratch();
	__u32 l3_off = meta >> 16;
	int ret;

	if (!s || l3_off < 14)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	ret = tenet_acl_parse_l4(raw, kind, meta & 0xff, s->dir, s);
	if (ret < 0)
		return ret;
	/* Remote MAC: the destination of what the VM sends, the source of what it receives. */
	if (tenet_acl_load(raw, kind, l3_off - (s->dir == TENET_ACL_OUT ? 14 : 8), s->rmac, 6) < 0)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	return 0;
}

/*
 * The stages are global functions: the verifier checks each once, on its own, instead of once
 * for every path of the forwarding code that reaches an ACL point, and each has a small frame of
 * its own (the forwarding path leaves 48 bytes of the 512-byte stack). Stages that read the packet
 * come in one variant per program type (a global function's context argument must have the
 * program's type); an object carries only the variants its programs call.
 */
__noinline int tenet_acl_read_ip_skb(struct __sk_buff *skb, __u32 meta)
{
	return tenet_acl_read_ip(skb, TENET_CTX_SKB, meta);
}

__noinline int tenet_acl_read_ip_xdp(struct xdp_md *xdp, __u32 meta)
{
	return tenet_acl_read_ip(xdp, TENET_CTX_XDP, meta);
}

__noinline int tenet_acl_read_l4_skb(struct __sk_buff *skb, __u32 meta)
{
	return tenet_acl_read_l4(skb, TENET_CTX_SKB, meta);
}

__noinline int tenet_acl_read_l4_xdp(struct xdp_md *xdp, __u32 meta)
{
	return tenet_acl_read_l4(xdp, TENET_CTX_XDP, meta);
}

/* Stores the verdict of a first fragment for the later ones; returns the verdict. */
static __always_inline int tenet_acl_finish(struct tenet_acl_scratch *s)
{
	if (s->frag_kind == 1) {
		bpf_map_update_elem(&TENET_MAP_ACL_FRAGS, &s->frag, &s->fv, BPF_ANY);
		tenet_acl_stat(TENET_ACL_STAT_FRAG_STORED, s->len);
	}
	return s->fv.verdict == TENET_ACL_ALLOW ? 0 : -TENET_DROP_ACL_DENY;
}

/*
 * Stage 4: state. A later fragment takes its first fragment's verdict; a reply of a live tracked
 * flow, or an ICMP error about one, is admitted. Returns 0 (allowed), 1 (classify) or a drop.
 */
__noinline int tenet_acl_track(void)
{
	struct tenet_acl_scratch *s = tenet_acl_scratch();
	const struct tenet_acl_frag *f;
	const struct tenet_acl_ct *rel;
	struct tenet_acl_ct *ct;

	if (!s)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	if (s->frag_kind == 2) {
		f = bpf_map_lookup_elem(&TENET_MAP_ACL_FRAGS, &s->frag);
		if (!f) {
			tenet_acl_stat(TENET_ACL_STAT_FRAG_MISS, s->len);
			return -TENET_DROP_ACL_FRAGMENT;
		}
		tenet_acl_stat(TENET_ACL_STAT_FRAG_HIT, s->len);
		tenet_acl_count_rule(f->rsid, f->rank, s->len);
		return f->verdict == TENET_ACL_ALLOW ? 0 : -TENET_DROP_ACL_DENY;
	}

	s->now = bpf_ktime_get_ns();
	s->fv.rsid = s->rsid;
	s->fv.rank = TENET_ACL_NO_RULE;
	s->fv.verdict = TENET_ACL_ALLOW;
	ct = bpf_map_lookup_elem(&TENET_MAP_ACL_CT, &s->flow);
	if (ct && !tenet_acl_ct_live(ct, s->now)) {
		tenet_acl_stat(TENET_ACL_STAT_CT_EXPIRED, s->len);
		ct = NULL;
	}
	if (ct && ct->dir != s->dir) {
		ct->last_seen_ns = s->now;
		tenet_acl_stat(TENET_ACL_STAT_CT_REPLY, s->len);
		return tenet_acl_finish(s);
	}
	if (!ct && s->icmp_err) {
		rel = bpf_map_lookup_elem(&TENET_MAP_ACL_CT, &s->emb);
		if (rel && tenet_acl_ct_live(rel, s->now)) {
			tenet_acl_stat(TENET_ACL_STAT_CT_RELATED, s->len);
			return tenet_acl_finish(s);
		}
	}
	if (!ct)
		tenet_acl_stat(TENET_ACL_STAT_CT_MISS, s->len);
	return 1;
}

/* Stages 5 and 6: the deciding rule into s->rank (two halves of three fields each). */
__noinline int tenet_acl_decide_a(void)
{
	struct tenet_acl_scratch *s = tenet_acl_scratch();

	if (!s)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	return tenet_acl_match_a(s);
}

__noinline int tenet_acl_decide_b(void)
{
	struct tenet_acl_scratch *s = tenet_acl_scratch();

	if (!s)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	return tenet_acl_match_b(s);
}

/* Stage 7: the deciding rule's action, counters and connection tracking. Returns 0 or a drop. */
__noinline int tenet_acl_apply(void)
{
	struct tenet_acl_scratch *s = tenet_acl_scratch();
	const struct tenet_acl_rule *rule;

	if (!s)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	if (s->rank == TENET_ACL_NO_RULE) {
		tenet_acl_stat(TENET_ACL_STAT_NO_MATCH, s->len);
		return tenet_acl_finish(s);
	}
	s->rk.rsid = s->rsid;
	s->rk.rank = s->rank;
	rule = bpf_map_lookup_elem(&TENET_MAP_ACL_RULES, &s->rk);
	if (!rule)
		return -TENET_DROP_ACL_UNCLASSIFIABLE;
	s->fv.rank = s->rank;
	tenet_acl_count_rule(s->rsid, s->rank, s->len);
	if (rule->action != TENET_ACL_ALLOW) {
		s->fv.verdict = TENET_ACL_DENY;
	} else if (rule->flags & TENET_ACL_RULE_STATEFUL) {
		s->ct.last_seen_ns = s->now;
		s->ct.idle_timeout_s = rule->idle_timeout_s;
		s->ct.rsid = s->rsid;
		s->ct.rank = s->rank;
		s->ct.dir = s->dir;
		s->ct.pad[0] = s->ct.pad[1] = s->ct.pad[2] = 0;
		if (!bpf_map_lookup_elem(&TENET_MAP_ACL_CT, &s->flow))
			tenet_acl_stat(TENET_ACL_STAT_CT_INSERT, s->len);
		bpf_map_update_elem(&TENET_MAP_ACL_CT, &s->flow, &s->ct, BPF_ANY);
	}
	return tenet_acl_finish(s);
}

/*
 * The ACL of port ifindex for a packet in direction dir whose IP header (family) is at l3_off
 * and whose Ethernet header directly precedes it. remote_vsid: the virtual subnet of the other
 * end. Returns 0 to let the packet go on, or a negated drop reason.
 *
 * The stages are BPF-to-BPF calls made one after the other from here, not inlined: the
 * forwarding path's frame leaves 48 bytes of the 512-byte stack, and the deepest chain is that
 * frame plus one stage's. Everything the stages share is in the per-CPU scratch map.
 */
static __always_inline int tenet_acl(const struct tenet_ctx *ctx, __u32 l3_off, __u8 family,
				     __u32 ifindex, __u8 dir, __u32 remote_vsid)
{
	__u32 meta = (l3_off & 0xffff) << 16 | family;
	int ret;

	ret = tenet_acl_prep(ifindex, dir, remote_vsid, ctx->len);
	if (ret <= 0)
		return ret;
	if (ctx->kind == TENET_CTX_XDP) {
		ret = tenet_acl_read_ip_xdp(ctx->raw, meta);
		if (ret < 0)
			return ret;
		ret = tenet_acl_read_l4_xdp(ctx->raw, meta);
	} else {
		ret = tenet_acl_read_ip_skb(ctx->raw, meta);
		if (ret < 0)
			return ret;
		ret = tenet_acl_read_l4_skb(ctx->raw, meta);
	}
	if (ret < 0)
		return ret;
	ret = tenet_acl_track();
	if (ret <= 0)
		return ret;
	ret = tenet_acl_decide_a();
	if (ret < 0)
		return ret;
	ret = tenet_acl_decide_b();
	if (ret < 0)
		return ret;
	return tenet_acl_apply();
}

#endif /* TENET_LIB_ACL_H */
