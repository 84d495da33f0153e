#!/usr/bin/env python3
# Linux's answers for the tstack/posix IPv6 cases of test/unit/posix-ipv6.test.ts: the same calls,
# with the same labels, on kernel sockets (raw sockaddr bytes through libc, so lengths and
# families are exactly what a C program passes). Prints one JSON object {label: result}, a
# result being the call's value or its errno name (ENOTSUP printed as EOPNOTSUPP, its other
# name). 127.0.0.1 and ::1 stand for the test's addresses. test/fixtures/posix-ipv6-linux.ts
# holds the answers; test/integration/posix-ipv6-linux.test.ts runs this script (as root, in a
# scratch namespace) and compares. By hand:
#   ip netns add posix6-probe && ip netns exec posix6-probe ip link set lo up
#   ip netns exec posix6-probe python3 scripts/posix-ipv6-linux.py; ip netns del posix6-probe
import ctypes, errno, json, socket, struct

libc = ctypes.CDLL(None, use_errno=True)
AF_INET, AF_INET6 = 2, 10
IPPROTO_IP, IPPROTO_IPV6 = 0, 41
IP_TOS, IP_TTL, IP_MULTICAST_LOOP = 1, 2, 34
IPV6_UNICAST_HOPS, IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP = 16, 17, 18, 19
IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP, IPV6_V6ONLY, IPV6_TCLASS = 20, 21, 26, 67
A, A6, B, B6 = '127.0.0.1', '::1', '127.0.0.1', '::1'


def sin(addr, port):
    return struct.pack('<H', AF_INET) + struct.pack('>H', port) + socket.inet_aton(addr) + b'\0' * 8


def sin6(addr, port, family=AF_INET6):
    return struct.pack('<H', family) + struct.pack('>H', port) + b'\0' * 4 + socket.inet_pton(socket.AF_INET6, addr) + b'\0' * 4


def name(e):
    n = errno.errorcode[e]
    return 'EOPNOTSUPP' if n == 'ENOTSUP' else n


def sockcall(fn, fd, sa):
    b = ctypes.create_string_buffer(sa, len(sa))
    return 0 if fn(fd, b, len(sa)) == 0 else -ctypes.get_errno()


def bind(s, sa): return sockcall(libc.bind, s.fileno(), sa)
def connect(s, sa): return sockcall(libc.connect, s.fileno(), sa)


def setopt(s, level, opt, v):
    try:
        s.setsockopt(level, opt, v)
        return 0
    except OSError as e:
        return -e.errno


def getopt(s, level, opt):
    try:
        return s.getsockopt(level, opt)
    except OSError as e:
        return -e.errno


def mreq6(group, ifindex):
    return socket.inet_pton(socket.AF_INET6, group) + struct.pack('<i', ifindex)


def either(*calls):
    """a || b || … as the test writes it: the first non-zero result, else the last."""
    r = 0
    for c in calls:
        r = c()
        if r != 0:
            return r
    return r


results = {}


def run(label, domain, ty, fn, v6only=False):
    s = socket.socket(domain, ty)
    if v6only:
        s.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
    r = fn(s)
    results[label] = name(-r) if r < 0 else str(r)
    s.close()


for ty, tn in ((socket.SOCK_STREAM, 'tcp'), (socket.SOCK_DGRAM, 'udp')):
    V6, V4 = socket.AF_INET6, socket.AF_INET
    run(f'{tn} v6 bind AF_INET sa', V6, ty, lambda s: bind(s, sin(A, 0)))
    run(f'{tn} v6 bind family 99', V6, ty, lambda s: bind(s, sin6('::', 0, 99)))
    run(f'{tn} v4 bind AF_INET6 sa', V4, ty, lambda s: bind(s, sin6('::', 0)))
    run(f'{tn} v6only bind mapped', V6, ty, lambda s: bind(s, sin6('::ffff:' + A, 0)), True)
    run(f'{tn} v6 bind mapped', V6, ty, lambda s: bind(s, sin6('::ffff:' + A, 0)))
    run(f'{tn} v6 set V6ONLY after bind', V6, ty, lambda s: either(lambda: bind(s, sin6('::', 0)), lambda: setopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1)))
    run(f'{tn} v4 set V6ONLY', V4, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1))
    run(f'{tn} v4 get V6ONLY', V4, ty, lambda s: getopt(s, IPPROTO_IPV6, IPV6_V6ONLY))
    run(f'{tn} v4 set IPV6_TCLASS', V4, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_TCLASS, 8))
    run(f'{tn} v6 set IP_TOS', V6, ty, lambda s: either(lambda: setopt(s, IPPROTO_IP, IP_TOS, 8), lambda: getopt(s, IPPROTO_IP, IP_TOS)))
    run(f'{tn} v6 get IP_TTL', V6, ty, lambda s: getopt(s, IPPROTO_IP, IP_TTL))
    run(f'{tn} v6 get IPV6_MULTICAST_HOPS', V6, ty, lambda s: getopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS))
    run(f'{tn} v6 get IPV6_MULTICAST_LOOP', V6, ty, lambda s: getopt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP))
    run(f'{tn} v6 get IPV6_MULTICAST_IF', V6, ty, lambda s: getopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF))
    run(f'{tn} v6 set IPV6_MULTICAST_HOPS 256', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 256))
    run(f'{tn} v6 set IPV6_MULTICAST_LOOP 2', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 2))
    run(f'{tn} v6 set IPV6_UNICAST_HOPS -2', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -2))
    run(f'{tn} v6 set IPV6_MULTICAST_IF 999', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, 999))
    run(f'{tn} v6 set IP_MULTICAST_LOOP', V6, ty, lambda s: either(lambda: setopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, 0), lambda: getopt(s, IPPROTO_IP, IP_MULTICAST_LOOP)))
    run(f'{tn} v6 connect AF_INET sa', V6, ty, lambda s: connect(s, sin(A, 9)) if ty == socket.SOCK_DGRAM else connect(s, sin(A, 9)))
    run(f'{tn} v6only connect AF_INET sa', V6, ty, lambda s: connect(s, sin(A, 9)), True)
    run(f'{tn} v6only connect mapped', V6, ty, lambda s: connect(s, sin6('::ffff:' + A, 9)), True)
    run(f'{tn} v4 connect AF_INET6 sa', V4, ty, lambda s: connect(s, sin6(A6, 9)))
    run(f'{tn} v6 bound mapped connect v6', V6, ty, lambda s: either(lambda: bind(s, sin6('::ffff:' + B, 0)), lambda: connect(s, sin6(A6, 9))))
    run(f'{tn} v6 bound v6 connect mapped', V6, ty, lambda s: either(lambda: bind(s, sin6(B6, 0)), lambda: connect(s, sin6('::ffff:' + A, 9))))
    run(f'{tn} v6 bind fe80::1 no scope', V6, ty, lambda s: bind(s, sin6('fe80::1', 0)))
    run(f'{tn} v6 bind not local', V6, ty, lambda s: bind(s, sin6('2001:db8:22::99', 0)))
    run(f'{tn} v6 bind ff02::1', V6, ty, lambda s: bind(s, sin6('ff02::1', 0)))
    run(f'{tn} v6 join', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)))
    run(f'{tn} v6 join twice', V6, ty, lambda s: either(lambda: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)), lambda: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1))))
    run(f'{tn} v6 join unicast', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6(A6, 1)))
    run(f'{tn} v6 leave unjoined', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_LEAVE_GROUP, mreq6('ff15::1', 1)))
    run(f'{tn} v6 join short', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, b'\0' * 8))
    run(f'{tn} v6 join ifindex 999', V6, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 999)))
    run(f'{tn} v4 join', V4, ty, lambda s: setopt(s, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)))

print(json.dumps(results, sort_keys=True))
