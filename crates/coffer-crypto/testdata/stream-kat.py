# Independent model of Coffer's sealed streams (docs/format.md, "Sealed stream"), written with
# pyca/cryptography's AESGCM: it computes the frozen known answers pinned in src/stream.rs
# (test both_kinds_seal_to_their_frozen_bytes). Run: python3 stream-kat.py
import hashlib, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
SEG=65536
def data(n, seed):
    return bytes((((i+seed)*0x9e3779b97f4a7c15) & (2**64-1)) >> 56 for i in range(n))
def nonce(prefix, i, last, mark=0):
    return bytes(prefix) + struct.pack(">I", i) + bytes([int(last) | mark])
def aad(sid): return bytes([1]) + struct.pack(">I", SEG) + struct.pack(">H", len(sid)) + sid
def outer_aad(sid): return b"coffer dsse outer layer" + aad(sid)
def seal(plain, sid, k1, k2=None, prefix=(1,2,3,4,5,6,7)):
    n = max(1, -(-len(plain)//SEG)); out=[]
    for i in range(n):
        seg = plain[i*SEG:(i+1)*SEG]; last = i+1==n
        s = AESGCM(k1).encrypt(nonce(prefix,i,last), seg, aad(sid))
        if k2: s = AESGCM(k2).encrypt(nonce(prefix,i,last,2), s, outer_aad(sid))
        out.append(s)
    return out
p = data(SEG+1000, 7)
k1, k2 = bytes([0x11])*32, bytes([0x22])*32
print("single", hashlib.sha256(b"".join(seal(p,b"kat-stream",k1))).hexdigest())
print("dual  ", hashlib.sha256(b"".join(seal(p,b"kat-stream",k1,k2))).hexdigest())
print("short-single", seal(b"coffer", b"kat", k1)[0].hex())
print("short-dual  ", seal(b"coffer", b"kat", k1, k2)[0].hex())
