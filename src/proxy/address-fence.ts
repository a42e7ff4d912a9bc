import { BlockList, isIP } from "node:net";

/**
 * The address fence (OWASP SSRF prevention; checklist item 19): which IP addresses a credential-bearing request may
 * never connect to. Fails closed: anything that is not a valid IP address is forbidden.
 */

const V4_FORBIDDEN: ReadonlyArray<readonly [string, number, string]> = [
  ["0.0.0.0", 8, "this network"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "carrier-grade NAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local (cloud metadata)"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "IETF protocol assignments"],
  ["192.0.2.0", 24, "documentation"],
  ["192.88.99.0", 24, "6to4 relay anycast"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["198.51.100.0", 24, "documentation"],
  ["203.0.113.0", 24, "documentation"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved and broadcast (includes 255.255.255.255)"],
];

// IPv6 is fenced by allowlist first: only global unicast 2000::/3 can pass. That alone forbids ::, ::1, the IPv4-
// mapped ::ffff:0:0/96, the IPv4-compatible ::/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, discard 100::/64,
// unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10 and multicast ff00::/8. Every IPv6 range that
// embeds an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is forbidden whole, so no IPv4 address, public or
// not, can be smuggled inside one: the embedded address never needs a second look.
const V6_GLOBAL_UNICAST: readonly [string, number] = ["2000::", 3];
const V6_FORBIDDEN: ReadonlyArray<readonly [string, number, string]> = [
  ["2001::", 23, "IETF protocol assignments (includes Teredo 2001::/32, which embeds IPv4)"],
  ["2001:db8::", 32, "documentation"],
  ["2002::", 16, "6to4 (embeds IPv4)"],
  ["3fff::", 20, "documentation"],
];

const forbidden = new BlockList();
for (const [net, prefix] of V4_FORBIDDEN) forbidden.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of V6_FORBIDDEN) forbidden.addSubnet(net, prefix, "ipv6");
const globalUnicast = new BlockList();
globalUnicast.addSubnet(V6_GLOBAL_UNICAST[0], V6_GLOBAL_UNICAST[1], "ipv6");

/**
 * Whether a credential-bearing connection to `address` must be refused. `address` is an IP address as DNS or a
 * socket reports it (IPv6 without brackets). Anything that is not a plain IPv4 or IPv6 address, including an IPv6
 * address with a zone id (`fe80::1%eth0`), is forbidden.
 */
export function isForbiddenAddress(address: string): boolean {
  if (typeof address !== "string" || address.includes("%")) return true;
  const family = isIP(address);
  if (family === 4) return forbidden.check(address, "ipv4");
  if (family === 6) return !globalUnicast.check(address, "ipv6") || forbidden.check(address, "ipv6");
  return true;
}

/**
 * Whether a host name is, or could be read by some parser as, an IP literal rather than a DNS name. Such hosts are
 * never resolved and never allowed as upstream hosts. True for anything `net.isIP` accepts, anything with `:` or
 * brackets (IPv6), and every name whose last label is numeric, the WHATWG URL rule that turns `2130706433`,
 * `0x7f.1`, `0177.0.0.1` and `127.1` into 127.0.0.1 (a trailing dot is ignored).
 */
export function isIpLiteralHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  if (/[:[\]]/.test(host)) return true;
  const labels = host.replace(/\.$/, "").split(".");
  const last = labels[labels.length - 1] ?? "";
  return /^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/i.test(last);
}
