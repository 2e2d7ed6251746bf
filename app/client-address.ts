// The address a page's limits are counted against. An IPv6 user is usually given a whole /64, so
// the limits count the /64, not the one address of it a page happens to use. Behind a reverse
// proxy (--trust-proxy) every connection comes from the proxy, so the address is the last hop of
// X-Forwarded-For: the one the proxy itself appended, which a page cannot forge.

export function lastForwardedFor(header: string | undefined): string | null {
  if (!header) return null;
  const hops = header.split(',').map((hop) => hop.trim()).filter(Boolean);
  return hops.at(-1) ?? null;
}

/** The key a limit is counted under: an IPv4 address, or the /64 of an IPv6 one. */
export function addressKey(address: string): string {
  let a = address.trim().toLowerCase();
  if (a.startsWith('[')) a = a.slice(1, a.indexOf(']'));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1];
  if (!a.includes(':')) return a;
  const [head, tail = ''] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
