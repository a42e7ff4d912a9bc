import { describe, expect, it } from "vitest";
import { isForbiddenAddress, isIpLiteralHost } from "../../src/proxy/address-fence.js";

describe("isForbiddenAddress", () => {
  it.each([
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "100.127.255.255",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "::ffff:8.8.8.8",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::808:808",
    "64:ff9b:1::1",
    "100::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "2002:7f00:1::1",
    "2002:808:808::1",
    "3fff::1",
    "fe80::1%eth0",
    "not-an-ip",
    "",
    "127.1",
    "2130706433",
  ])("forbids %s", (addr) => {
    expect(isForbiddenAddress(addr)).toBe(true);
  });

  it.each(["8.8.8.8", "140.82.112.6", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "2a00:1450:4001::200e"])(
    "allows public %s",
    (addr) => {
      expect(isForbiddenAddress(addr)).toBe(false);
    },
  );
});

describe("isIpLiteralHost", () => {
  it.each(["127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1", "1.2.3.4.", "[::1]", "::ffff:127.0.0.1", "evil.0x1", "a.b.123"])(
    "treats %s as an IP literal",
    (h) => {
      expect(isIpLiteralHost(h)).toBe(true);
    },
  );
  it.each(["api.github.com", "api.test", "1password.com", "x.0xzz", "123.example.com"])("treats %s as a name", (h) => {
    expect(isIpLiteralHost(h)).toBe(false);
  });
});
