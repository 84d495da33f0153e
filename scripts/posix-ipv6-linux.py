#!/usr/bin/env python3
# Linux's answers for the tstack/posix IPv6 cases in test/unit/posix-ipv6.test.ts: the same
# calls on kernel sockets (raw sockaddr bytes through libc, so lengths and families are exactly
# what a C program passes). Run as root in a scratch namespace:
#   ip netns add posix6-probe && ip netns exec posix6-probe ip link set lo up
#   ip netns exec posix6-probe python3 scripts/posix-ipv6-linux.py; ip netns del posix6-probe
# (127.0.0.1 and ::1 stand for the test's addresses; errno names are Linux's, EOPNOTSUPP prints
# as ENOTSUP.)
import ctypes, socket, struct, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def sin(addr, port): return struct.pack('<H', 2) + struct.pack('>H', port) + socket.inet_aton(addr) + b'\0'*8
def sin6(addr, port, scope=0): return struct.pack('<H', 10) + struct.pack('>H', port) + b'\0'*4 + socket.inet_pton(socket.AF_INET6, addr) + struct.pack('<I', scope)
def call(fn, fd, sa):
    b = ctypes.create_string_buffer(sa, len(sa))
    r = fn(fd, b, len(sa))
    return 0 if r == 0 else errno.errorcode[ctypes.get_errno()]
def sockopt(s, lvl, name, v):
    try: s.setsockopt(lvl, name, v); return 0
    except OSError as e: return errno.errorcode[e.errno]
def gsockopt(s, lvl, name):
    try: return s.getsockopt(lvl, name)
    except OSError as e: return errno.errorcode[e.errno]
def sb(fd, sa): return call(libc.bind, fd, sa)
def sc(fd, sa): return call(libc.connect, fd, sa)
def res(name, v): print(f'{name}: {v}')
T, U = socket.SOCK_STREAM, socket.SOCK_DGRAM
for ty, tn in ((T, 'tcp'), (U, 'udp')):
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 bind AF_INET sa', sb(s.fileno(), sin('127.0.0.1', 0)))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 bind family 99', sb(s.fileno(), struct.pack('<H', 99) + sin6('::', 0)[2:]))
    s = socket.socket(socket.AF_INET, ty); res(f'{tn} v4 bind AF_INET6 sa', sb(s.fileno(), sin6('::', 0)))
    s = socket.socket(socket.AF_INET6, ty); s.setsockopt(41, 26, 1); res(f'{tn} v6only bind mapped', sb(s.fileno(), sin6('::ffff:127.0.0.1', 0)))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 bind mapped', sb(s.fileno(), sin6('::ffff:127.0.0.1', 0)))
    res(f'{tn} v6 getsockname after mapped bind', s.getsockname())
    res(f'{tn} v6 V6ONLY default', gsockopt(s, 41, 26))
    res(f'{tn} v6 set V6ONLY after bind', sockopt(s, 41, 26, 1))
    s = socket.socket(socket.AF_INET, ty); res(f'{tn} v4 set V6ONLY', sockopt(s, 41, 26, 1)); res(f'{tn} v4 get V6ONLY', gsockopt(s, 41, 26))
    res(f'{tn} v4 set IPV6_TCLASS', sockopt(s, 41, 67, 8))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 set IP_TOS', sockopt(s, 0, 1, 8)); res(f'{tn} v6 get IP_TOS', gsockopt(s, 0, 1))
    res(f'{tn} v6 get IP_TTL', gsockopt(s, 0, 2))
    res(f'{tn} v6 set IPV6_UNICAST_HOPS', sockopt(s, 41, 16, 7)); res(f'{tn} v6 get IPV6_UNICAST_HOPS', gsockopt(s, 41, 16))
    res(f'{tn} v6 get IPV6_MULTICAST_HOPS', gsockopt(s, 41, 18)); res(f'{tn} v6 get IPV6_MULTICAST_LOOP', gsockopt(s, 41, 19)); res(f'{tn} v6 get IPV6_MULTICAST_IF', gsockopt(s, 41, 17))
    res(f'{tn} v6 set IPV6_MULTICAST_HOPS 256', sockopt(s, 41, 18, 256)); res(f'{tn} v6 set IPV6_MULTICAST_HOPS -1', sockopt(s, 41, 18, -1)); res(f'{tn} v6 set IPV6_MULTICAST_LOOP 2', sockopt(s, 41, 19, 2))
    res(f'{tn} v6 set IPV6_UNICAST_HOPS -2', sockopt(s, 41, 16, -2))
    res(f'{tn} v6 set IPV6_MULTICAST_IF 999', sockopt(s, 41, 17, 999))
    res(f'{tn} v6 set IP_MULTICAST_LOOP', sockopt(s, 0, 34, 0)); res(f'{tn} v6 get IP_MULTICAST_LOOP', gsockopt(s, 0, 34))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 connect AF_INET sa', sc(s.fileno(), sin('127.0.0.1', 9)))
    s = socket.socket(socket.AF_INET6, ty); s.setsockopt(41, 26, 1); res(f'{tn} v6only connect AF_INET sa', sc(s.fileno(), sin('127.0.0.1', 9)))
    s = socket.socket(socket.AF_INET6, ty); s.setsockopt(41, 26, 1); res(f'{tn} v6only connect mapped', sc(s.fileno(), sin6('::ffff:127.0.0.1', 9)))
    s = socket.socket(socket.AF_INET, ty); res(f'{tn} v4 connect AF_INET6 sa', sc(s.fileno(), sin6('::1', 9)))
    s = socket.socket(socket.AF_INET6, ty); s.bind(('::ffff:127.0.0.1', 0)); res(f'{tn} v6 bound mapped connect v6', sc(s.fileno(), sin6('::1', 9)))
    s = socket.socket(socket.AF_INET6, ty); s.bind(('::1', 0)); res(f'{tn} v6 bound v6 connect mapped', sc(s.fileno(), sin6('::ffff:127.0.0.1', 9)))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 fresh getsockname', s.getsockname())
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 bind fe80::1 no scope', sb(s.fileno(), sin6('fe80::1', 0)))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 bind not local', sb(s.fileno(), sin6('2001:db8::99', 0)))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 bind ff02::1', sb(s.fileno(), sin6('ff02::1', 0)))
    s = socket.socket(socket.AF_INET6, ty); res(f'{tn} v6 join', sockopt(s, 41, 20, socket.inet_pton(socket.AF_INET6, 'ff15::1') + struct.pack('<I', 1)))
    res(f'{tn} v6 join twice', sockopt(s, 41, 20, socket.inet_pton(socket.AF_INET6, 'ff15::1') + struct.pack('<I', 1)))
    res(f'{tn} v6 join unicast', sockopt(s, 41, 20, socket.inet_pton(socket.AF_INET6, '::1') + struct.pack('<I', 1)))
    res(f'{tn} v6 set IPV6_LEAVE_GROUP', sockopt(s, 41, 21, socket.inet_pton(socket.AF_INET6, 'ff15::1') + struct.pack('<I', 1)))
    res(f'{tn} v6 leave unjoined', sockopt(s, 41, 21, socket.inet_pton(socket.AF_INET6, 'ff15::1') + struct.pack('<I', 1)))
    res(f'{tn} v6 join short', sockopt(s, 41, 20, b'\0'*8))
    res(f'{tn} v6 join ifindex 999', sockopt(s, 41, 20, socket.inet_pton(socket.AF_INET6, 'ff15::1') + struct.pack('<I', 999)))
    s = socket.socket(socket.AF_INET, ty); res(f'{tn} v4 join', sockopt(s, 41, 20, socket.inet_pton(socket.AF_INET6, 'ff15::1') + struct.pack('<I', 1)))
# dual stack accept / recvfrom
l = socket.socket(socket.AF_INET6, T); l.bind(('::', 0)); l.listen(); p = l.getsockname()[1]
res('listener getsockname', l.getsockname())
c = socket.socket(socket.AF_INET, T); c.connect(('127.0.0.1', p)); a, peer = l.accept(); res('accept v4 peer', peer); res('accepted sockname', a.getsockname())
l6 = socket.socket(socket.AF_INET6, T); l6.setsockopt(41, 26, 1); l6.bind(('::', 0)); l6.listen(); p6 = l6.getsockname()[1]
c = socket.socket(socket.AF_INET, T); res('v4 connect to v6only listener', c.connect_ex(('127.0.0.1', p6)))
c = socket.socket(socket.AF_INET6, T); res('v6 connect to v6only listener', c.connect_ex(('::1', p6)))
# same port v4 and v6only
x = socket.socket(socket.AF_INET, T); res('v4 bind port of v6only listener', sb(x.fileno(), sin('0.0.0.0', p6)))
x = socket.socket(socket.AF_INET, T); res('v4 bind port of dual listener', sb(x.fileno(), sin('0.0.0.0', p)))
u = socket.socket(socket.AF_INET6, U); u.bind(('::', 0)); up = u.getsockname()[1]
v = socket.socket(socket.AF_INET, U); v.sendto(b'hi', ('127.0.0.1', up)); res('udp recvfrom v4 on dual', u.recvfrom(10))
r = libc.sendto(u.fileno(), b'x', 1, 0, ctypes.create_string_buffer(sin('127.0.0.1', up), 16), 16); res('udp v6 sendto AF_INET sa', r if r >= 0 else errno.errorcode[ctypes.get_errno()])
res('udp recvfrom self', u.recvfrom(10))
w = socket.socket(socket.AF_INET6, U); w.setsockopt(41, 26, 1)
r = libc.sendto(w.fileno(), b'x', 1, 0, ctypes.create_string_buffer(sin('127.0.0.1', up), 16), 16); res('udp v6only sendto AF_INET sa', r if r >= 0 else errno.errorcode[ctypes.get_errno()])
r = libc.sendto(w.fileno(), b'x', 1, 0, ctypes.create_string_buffer(sin6('::ffff:127.0.0.1', up), 28), 28); res('udp v6only sendto mapped', r if r >= 0 else errno.errorcode[ctypes.get_errno()])
w = socket.socket(socket.AF_INET6, U); res('udp v6 connect AF_INET', sc(w.fileno(), sin('127.0.0.1', up))); res('udp v6 getpeername after AF_INET connect', w.getpeername()); res('getsockname', w.getsockname())
# multicast loop: v6 send to ff02::1 on lo? lo has no multicast flag usually; skip
