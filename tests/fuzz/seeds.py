#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seed corpora of the libFuzzer harnesses into OUT/<target>/
# (from tests/c/vectors and test_fuzz.c's seeds).
#   seeds.py [OUT]    (default build/fuzz/corpus)
import base64, hashlib, hmac, json, os, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'build', 'fuzz', 'corpus')
V = os.path.join(ROOT, 'tests', 'c', 'vectors')

def put(target, items):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for i, b in enumerate(items):
        if isinstance(b, str):
            b = b.encode()
        open(os.path.join(d, 'seed-%03d' % i), 'wb').write(b)

def rd(p):
    return open(os.path.join(V, p), 'rb').read().strip()

def sep(*fields):
    return b'\n--\n'.join(f.encode() if isinstance(f, str) else f for f in fields)

# ---- jwt ----
jwt = [b'\x00' + rd('jwt/' + f) for f in
       ['rfc7515-a1.jws', 'rfc7515-a2.jws', 'rfc7515-a3.jws', 'rfc7515-a4.jws',
        'rfc7515-a5.jws', 'rfc8037-a4.jws']]
def structured(mode, h, p):
    h = h.encode(); p = p.encode()
    return bytes([mode, len(h)]) + h + p
jwt += [
    structured(1, '{"alg":"HS256","typ":"JWT"}',
               '{"iss":"joe","exp":1300819380,"http://example.com/is_root":true}'),
    structured(1, '{"alg":"HS256","kid":"hs","cty":"x\\u00e9\\ud83d\\ude00"}',
               '{"sub":"J\\u00f6rg \\"j\\"","iss":"joe","aud":"orders","exp":1300819380.5,'
               '"nbf":1300818000,"iat":1300818990,"deep":[[[{"a":[true,false,"\\n\\t\\/"]}]]]}'),
    structured(2, '{"alg":"HS384"}',
               '{"iss":"joe","aud":["x","orders"],"sub":"bob","exp":1300819380,'
               '"realm_access":{"roles":["admin",1,null]},"scope":"a b  c","n":-0.25e1}'),
    structured(3, '{"kid":"hs","alg":"HS512","typ":"application/JWT","crit":[]}',
               '{"iss":"joe","exp":1300819001,"roles":"r1 r2","a":{"b":{"c":["x"]}}}'),
    structured(1, '{"alg":"HS256"}', '[1,-0,0.5,1E+2,"\\u0000",{"":null}]'),
]
put('jwt', jwt)

# ---- jwks ----
keys = json.load(open(os.path.join(ROOT, 'tests', 'fuzz', 'keys.jwks.json')))
jwks = [json.dumps(keys), json.dumps(keys, separators=(',', ':'))]
for k in keys['keys']:
    jwks.append(json.dumps({'keys': [k]}))
for f in ['rfc7515-a1-key.json', 'rfc7515-a2-key.json', 'rfc7515-a3-key.json',
          'rfc7515-a4-key.json', 'rfc8037-a1-private.json', 'rfc8037-a2-public.json']:
    jwks.append(b'{"keys":[' + rd('jwt/' + f) + b']}')
jwks.append('{"keys":[{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"},{"kty":"oct","use":"enc","k":"AAAA"},'
            '{"kty":"OKP","crv":"X25519","x":"AAAA"},{"kty":"RSA","alg":"RS256","n":"AQAB","e":"AQAB"}]}')
jwks.append('{"keys":[]}')
put('jwks', jwks)

# ---- policy_load (test_fuzz.c's POLICIES, plus the eval policy) ----
ISS = 'https://id.example.com/'
policies = [
    '{"name":"orders-api","authenticate":[{"type":"jwt","secret_file":"hs.key","algorithms":["HS256"],'
    '"issuer":"https://id.example.com/","audience":"orders","leeway":30,"roles_claim":"realm_access.roles"}],'
    '"rules":[{"path":"/healthz","allow":"anyone"},{"path":"/me"},{"path":"/admin/**","roles":["admin"]},'
    '{"path":"/orders/**","methods":["GET"],"scopes":["orders:read"]},'
    '{"path":"/orders/**","methods":["POST"],"scopes":["orders:write"],"claims":{"tenant":"acme"}},'
    '{"path":"/internal/**","deny":true}],'
    '"identity_headers":{"X-User":"sub","X-Roles":"roles","X-Tenant":"tenant"},'
    '"ip":{"allow":["10.0.0.0/8","::1/128","192.0.2.0/24"],"deny":["10.9.0.0/16"],"trusted_proxies":["127.0.0.1"]},'
    '"audit":{"path":"audit.log","log":"all"}}',
    '{"name":"keys","authenticate":[{"type":"api_key","keys":"api-keys"},'
    '{"type":"jwt","jwks":"jwks.json","algorithms":["HS256","RS256"]}],'
    '"rules":[{"path":"/bill/**","roles":["billing"]}],"rate_limit":{"by":"subject","rate":1,"per":"1s","burst":2},'
    '"identity_headers":{"X-User":"sub"}}',
    '{"name":"hooks","authenticate":[{"type":"webhook","provider":"github","secret_file":"gh.secret",'
    '"paths":["/hooks/*","/a/**"]},'
    '{"type":"webhook","provider":"stripe","secret_file":"gh.secret","tolerance":"5m"}],'
    '"rules":[{"path":"/hooks/*","methods":["POST"]}]}',
    '{"name":"users","authenticate":[{"type":"basic","users":"htpasswd","realm":"x"}],'
    '"rules":[{"path":"/a/*/b/**","allow":"anyone"},{"path":"/"}]}',
    '{"name":"pem","authenticate":[{"type":"jwt","pem":"rsa.pem","algorithms":["RS256","PS256"],'
    '"required_claims":["sub","tenant"],"cache_size":4,"cache_ttl":"10s","allow_no_exp":true,'
    '"subject_claim":"a.b","scopes_claim":"scp","header":"X-Token"}],'
    '"assertion":{"key_file":"as.key","ttl":60,"audience":"be","header":"X-A"},'
    '"audit":{"path":"a.log","log":"deny","request_id":"X-Request-Id"}}',
    '{"name":"hmac","authenticate":[{"type":"webhook","provider":"hmac","secret_file":"gh.secret",'
    '"header":"X-Sig","encoding":"base64url","prefix":"v1=","subject":"s","roles":"r"}],'
    '"rate_limit":[{"by":"header:X-Tenant","rate":5,"per":"1m"},{"by":"ip","rate":1,"burst":1}],'
    '"rules":[{"path":"/%41/**","methods":"POST","allow":"anyone"}]}',
]
policies.append(open(os.path.join(ROOT, 'tests', 'fuzz', 'policy_eval.json')).read())
put('policy_load', policies)

# ---- policy_eval ----
def tok(payload, key=b'0123456789abcdef0123456789abcdef', header='{"alg":"HS256","typ":"JWT"}'):
    b = lambda x: base64.urlsafe_b64encode(x).rstrip(b'=')
    si = b(header.encode()) + b'.' + b(payload.encode())
    return (si + b'.' + b(hmac.new(key, si, hashlib.sha256).digest())).decode()
NOW = 1800000000
claims = ('{"iss":"%s","aud":"orders","sub":"alice","exp":%d,"iat":%d,'
          '"realm_access":{"roles":["admin"]},"scope":"orders:read orders:write","tenant":"acme",'
          '"a":{"b":{"c":["x","y"]}}}' % (ISS, NOW + 600, NOW - 10))
US = b'\x1f'
def req(adv=0, absent=0, method='GET', path='/', query='', host='api.example.com', peer='127.0.0.1',
        authz='', xff='10.0.0.7', apikey='', gh='', stripe='', xsig='', xtoken='', tenant='',
        claims_=None, body=''):
    fields = [method, path, query, host, peer, authz, xff, apikey, gh, stripe, xsig, xtoken, tenant]
    if claims_ is not None or body:
        fields += [claims_ or '', body]
    if claims_ is None:
        absent |= 0  # claims field index 13 is never masked; empty claims = none minted? keep
    return bytes([adv, absent]) + US.join(f.encode() for f in fields)
ALL_HDR_ABSENT = 0b11100000  # authz, xff, apikey absent
ev = [
    req(path='/healthz', absent=ALL_HDR_ABSENT),
    req(path='/admin/users/7', authz='Bearer ' + tok(claims)),
    req(path='/orders/42/items/1', claims_=claims, absent=0),
    req(method='POST', path='/orders/42', claims_=claims),
    req(path='/internal/x/../../admin/%61', authz='Bearer ' + tok(claims)),
    req(path='/bill/x', apikey='lsk_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA', absent=0b00100000),
    req(path='/bill/x', query='a=b&api_key=lsk_another-fixed-key-for-the-fuzz-suite', absent=0b10100000),
    req(path='/me', authz='Basic YWxpY2U6cHc='),
    req(method='POST', path='/hooks/gh', absent=0b00100000, gh='!', body='{"x":1}'),
    req(method='POST', path='/hooks/stripe', absent=0b00100000, stripe='!', body='{"x":2}'),
    req(method='POST', path='/hooks/x/y', absent=0b00100000, xsig='!', body='raw'),
    req(path='/me', xtoken='Bearer ' + rd('jwt/rfc7515-a3.jws').decode(), absent=0b00100000),
    req(path='/me', xtoken='Bearer ' + rd('jwt/rfc7515-a2.jws').decode(), absent=0b00100000),
    req(path='/me', peer='10.0.0.1', xff='192.0.2.77, 10.9.1.1,10.0.0.2', absent=0b00100000, tenant='t1'),
    req(method='OPTIONS', path='/x', peer='::1', xff='2001:db8::1', absent=0b00100000),
    req(adv=200, path='/me', peer='192.0.2.5', claims_=claims.replace('alice', 'bob\\u0001')),
]
put('policy_eval', ev)

# ---- apikey (keys; run.sh adds the harness's key file) ----
put('apikey', [b'\x00lsk_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA',
               b'\x00lsk_another-fixed-key-for-the-fuzz-suite', b'\x00lsk_', b'\x02 lsk_x '])

# ---- path ----
put('path', ['/', '/a/b/c', '/x/%2e%2e/admin', '//admin', '/./admin/', '/a/b/..', '/%41%42/c%20d/',
             '/orders/42/../../admin/users/7', '/%252e%252e/x', '/a/./b/../../c//d/.',
             '/caf%C3%A9/men%c3%bc;v=1/x', '/api/v1/orders/%7Bid%7D/items?', '/..;/x', '%2e'])

# ---- cidr ----
addrs = ['192.0.2.1', '10.0.0.255', '::1', '2001:db8::1', '::ffff:10.1.2.3', '127.0.0.1', 'fe80::1%eth0',
         '0.0.0.0', '1:2:3:4:5:6:7:8', 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', '::', '2001:db8:0:0:1::']
entries = ['10.0.0.0/8', '::/0', '0.0.0.0/0', '1.2.3.4/32', '2001:db8::/32', '::ffff:10.0.0.0/104',
           '10.0.0.1/8', '192.168.1.0/24', 'fe80::/10', '1.2.3.4/33', '::1/128']
xffs = ['192.0.2.77, 10.1.1.1', '203.0.113.9,10.0.0.1 , 127.0.0.1', 'unknown, 2001:db8::5,\t198.51.100.3',
        '1.2.3.4,,10.0.0.2', '::ffff:192.0.2.1, ::1, 10.2.3.4', '', '10.0.0.1,10.0.0.2,10.0.0.3']
cidr = [b'\x00' + a.encode() for a in addrs] + [b'\x01' + e.encode() for e in entries]
cidr += [b'\x02' + bytes([i % 8]) + x.encode() for i, x in enumerate(xffs)]
cidr += [b'\x02\x09' + b'10.1.1.1\x1f' + b'192.0.2.1, 10.0.0.9']
put('cidr', cidr)

# ---- basic ----
b64 = lambda s: base64.b64encode(s.encode()).decode()
put('basic', [b'\x00Basic ' + b64('alice:correct horse').encode(), b'\x00basic   ' + b64('bob:p:w').encode(),
              b'\x00 \tBASIC ' + b64('alice:wrong').encode(), b'\x00Basic ' + b64('carol:x').encode(),
              b'\x00Basic ' + b64('alice:correct horse\n').encode(),
              b'\x01alice:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\n# c\n\nbob:$2y$10$abc\n'])

# ---- hmac ----
GH = b"It's a Secret to Everybody"; BODY = b'Hello, World!'
m = hmac.new(GH, BODY, hashlib.sha256).digest()
hx = m.hex()
hm = [b'\x00sha256=' + hx.encode(), b'\x00  sha256=' + hx.upper().encode(),
      b'\x00sha256=757107ea0eb2509fc211221cce984b8a37570b6d', b'\x00sha1=0123',
      b'\x01t=%d,v1=!' % (NOW - 5), b'\x01 t=%d, v1=%s ,v1=!,v0=abc,x=' % (NOW - 200, b'0' * 64),
      b'\x01v1=!,t=%d\t' % (NOW + 299), b'\x81t=0%d,v1=!,scheme=v2=x' % (NOW - 5),
      b'\x02v1=' + hx.encode(), b'\x03v1=' + base64.b64encode(m),
      b'\x04v1=' + base64.urlsafe_b64encode(m).rstrip(b'=')]
put('hmac', hm)

# ---- cron ----
put('cron', [b'\x00' + s.encode() for s in [
    '*/15 0-23/6 1,15,31 JAN-mar,Dec mon-FRI', '  5\t4 * * *  ', '59 23 31 12 7', '0 0 * * 5-7',
    '0 0 * * FRI-SUN', '5/20 * */2 * */3', '0 0 1 * MON', '0 0 29 2 *', '0 0 30 2 *', '@every 15m',
    '@hourly', '@yearly', '@every 1s', '0 0 29 2 */2', '*/60 */24 */31 */12 */8', '@every 99999999h']] +
    [bytes([i]) + b'0 12 * * *' for i in range(1, 8)])
