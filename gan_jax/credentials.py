"""C2PA content credentials: pictures and clips signed with a manifest that says a trained model
made them, which any C2PA reader checks (a signature, unlike the XMP label, shows whether the
file changed since it was written, and who vouches for it).

`--sign=CERT,KEY` on the verbs that write pictures builds a `Signer` and `use`s it; `reporting`
then signs every PNG, JPEG, GIF and MP4 it writes with a provenance label (`provenance.label`),
after the XMP label is embedded, so the signature covers the label too. The manifest: a
`c2pa.actions` assertion whose one action is `c2pa.created` with the IPTC digital source type
`trainedAlgorithmicMedia`, the claim generator gan_jax and its version, and an ASSERTION
assertion with the label's fields. `checker` reads a file's manifest back for `gan-jax
provenance`; `make_test_cert` writes a test CA and a certificate the library accepts.

Needs the `c2pa` extra (c2pa-python, cryptography); nothing is imported until a signer or a
checker is made.
"""
import contextlib
import datetime
import io
import os
import re
import threading

from gan_jax import provenance
from gan_jax.errors import UserError

ASSERTION = "gan-jax.provenance"  # the label of the assertion holding `provenance.label`'s fields
MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "mp4": "video/mp4"}
INSTALL = 'pip install "gan-jax[c2pa]"'
# The extended key usages c2pa-python 0.38.1 signs with (tried one by one; it refused
# documentSigning, c2pa-kp-claimSigning, Microsoft's C2PA signing, serverAuth, codeSigning and
# anyExtendedKeyUsage).
SIGNING_EKUS = {"1.3.6.1.5.5.7.3.4": "emailProtection", "1.3.6.1.5.5.7.3.8": "timeStamping",
                "1.3.6.1.5.5.7.3.9": "OCSPSigning"}
# No thumbnail: the library adds a JPEG of the picture by default, ~30 KB on a 64x64 picture.
SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}

_active = None  # the Signer pictures written now are signed with (a global: export's threads)


def use(signer):
  """Signs what is written from now on with `signer` (None: nothing); returns the one before."""
  global _active
  previous, _active = _active, signer
  return previous


@contextlib.contextmanager
def signing(signer):
  """`use(signer)` for the `with` block: `with signing(Signer(cert, key)): sampling.sample(...)`."""
  previous = use(signer)
  try:
    yield signer
  finally:
    use(previous)


def sign(data, file_format, fields):
  """File bytes `data` (png, jpeg, gif or mp4) signed by the signer in use, with the
  `provenance.label` fields `fields`; unchanged where none is in use."""
  return data if _active is None else _active.sign(data, file_format, fields)


def _libraries(what):
  """(c2pa, cryptography's x509) or one UserError saying how to install them."""
  try:
    import c2pa  # pylint: disable=g-import-not-at-top  (optional: the c2pa extra)
    from cryptography import x509  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f"{what} needs the c2pa extra (c2pa-python and cryptography): "
                    f"{INSTALL}.") from None
  return c2pa, x509


def _read(path, what):
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise UserError(f"The {what} file {path} could not be read ({e.strerror or e}): give the path "
                    f"of a PEM {what} file.") from None


class Signer:
  """Signs file bytes with the certificate chain in the PEM file `cert` (the signing certificate
  first, then its intermediates) and the PEM private key in `key`. Both are checked here, and
  a 1x1 picture is signed once, so that a certificate the library refuses is one UserError
  before any work is done."""

  def __init__(self, cert, key):
    c2pa, x509 = _libraries("--sign")
    from cryptography.hazmat.primitives import serialization
    self.c2pa = c2pa
    chain_pem, key_pem = _read(cert, "certificate"), _read(key, "private key")
    try:
      chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
      raise UserError(f"{cert} holds no PEM certificate: give the signing certificate, then its "
                      "intermediates, each as -----BEGIN CERTIFICATE-----.") from None
    try:
      private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:  # TypeError: an encrypted key
      why = "it is encrypted" if isinstance(e, TypeError) else "it is not a PEM private key"
      raise UserError(f"{key} cannot be used as the signing key ({why}): give the certificate's "
                      "private key as unencrypted PEM.") from None
    der = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if chain[0].public_key().public_bytes(*der) != private.public_key().public_bytes(*der):
      raise UserError(f"The key {key} does not belong to the certificate {cert} (their public "
                      "keys differ): give the key the certificate was issued for, with the "
                      "signing certificate first in the chain file.")
    self.algorithm = _algorithm(private, key)
    pkcs8 = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    self.lock = threading.Lock()  # one signature at a time: export signs from several threads
    try:
      info = c2pa.C2paSignerInfo(self.algorithm.encode(), chain_pem, pkcs8, None)
      self.signer = c2pa.Signer.from_info(info)
      self.context = c2pa.Context(settings=c2pa.Settings.from_dict(SETTINGS))
      self.sign(_probe(), "png", {})
    except c2pa.C2paError as e:
      raise UserError(f"The C2PA library refused the certificate {cert}: {_rejection(e, chain)}; "
                      "`gan-jax provenance make-test-cert --out=DIR` writes one it accepts, for "
                      "trials.") from None

  @classmethod
  def from_flag(cls, value):
    """The Signer of --sign=CERT,KEY (None for an empty value)."""
    if not value:
      return None
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip() for p in parts):
      raise UserError(f"--sign={value} must be CERT,KEY: a PEM certificate chain file and its PEM "
                      "private key file, such as --sign=cert.pem,key.pem.")
    return cls(*(p.strip() for p in parts))

  def manifest(self, fields):
    """The manifest definition of a file the library wrote, with the `provenance.label`
    fields `fields`."""
    assertions = [{"label": "c2pa.actions", "data": {"actions": [
        {"action": "c2pa.created", "digitalSourceType": provenance.SOURCE_TYPE}]}}]
    if fields:
      assertions.append({"label": ASSERTION, "data": dict(fields)})
    return {"claim_generator_info": [{"name": "gan_jax", "version": provenance.version()}],
            "assertions": assertions}

  def sign(self, data, file_format, fields):
    """`data` (png, jpeg, gif or mp4 file bytes) with a signed manifest embedded."""
    out = io.BytesIO()
    with self.lock:
      builder = self.c2pa.Builder(self.manifest(fields), context=self.context)
      builder.sign(self.signer, MIME[file_format], io.BytesIO(data), out)
    return out.getvalue()


def _algorithm(private, path):
  """The C2PA signing algorithm of a private key (RSA signs with PSS, as C2PA asks)."""
  from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
  if isinstance(private, rsa.RSAPrivateKey):
    return "ps256"
  if isinstance(private, ed25519.Ed25519PrivateKey):
    return "ed25519"
  curves = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
  if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name in curves:
    return curves[private.curve.name]
  kind = getattr(getattr(private, "curve", None), "name", None) or type(private).__name__
  raise UserError(f"{path} is a {kind} key, which C2PA does not sign with: use an EC key on "
                  "P-256, P-384 or P-521, an RSA key or an Ed25519 key.")


def _probe():
  from PIL import Image
  out = io.BytesIO()
  Image.new("L", (1, 1)).save(out, "png")
  return out.getvalue()


def _rejection(error, chain):
  """The library's reason for refusing a certificate, and what about the certificate may have
  caused it where the library does not say (C2PA's certificate profile)."""
  text = " ".join(re.sub(r"\(self#jumbf=[^)]*\)", "", str(error)).split()).rstrip(".")
  kind, _, rest = text.partition(": ")
  text = rest if rest and " " not in kind else text
  problem = _profile_problem(chain[0])
  return f"{text} ({problem})" if problem and problem not in text else text


def _profile_problem(cert):
  """What in `cert` C2PA's signing-certificate profile refuses, in words, or None."""
  from cryptography import x509

  def extension(kind):
    try:
      return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
      return None
  now = datetime.datetime.now(datetime.timezone.utc)
  if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
    return (f"it is valid from {cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d}")
  constraints = extension(x509.BasicConstraints)
  if constraints is not None and constraints.ca:
    return "it is a CA certificate, and a signer's must not be"
  usage = extension(x509.KeyUsage)
  if usage is None or not usage.digital_signature:
    return "its key usage does not include digitalSignature"
  purposes = extension(x509.ExtendedKeyUsage) or []
  if not any(p.dotted_string in SIGNING_EKUS for p in purposes):
    *others, last = SIGNING_EKUS.values()
    return f"it has no extended key usage the library signs with: {', '.join(others)} or {last}"
  if cert.issuer != cert.subject and extension(x509.AuthorityKeyIdentifier) is None:
    return "it has no authority key identifier"
  return None


def checker(trust=None):
  """A function: a file's path -> the C2PA part of its `gan-jax provenance` line, or None where
  it holds no manifest. trust: a PEM file of CA certificates whose signers are trusted (the
  library trusts none by default). Without c2pa-python: None (no C2PA part), unless `trust`
  asks for one."""
  try:
    import c2pa  # pylint: disable=g-import-not-at-top  (optional: the c2pa extra)
  except ImportError:
    if trust:
      _libraries("--trust")
    return None
  settings = {}
  if trust:
    _, x509 = _libraries("--trust")
    anchors = _read(trust, "trust anchor")
    try:
      x509.load_pem_x509_certificates(anchors)
    except ValueError:
      raise UserError(f"--trust={trust} holds no PEM certificate: give the CA certificates to "
                      "trust (`make-test-cert` writes ca.pem).") from None
    settings = {"trust": {"user_anchors": anchors.decode("ascii", "replace")}}
  context = c2pa.Context(settings=c2pa.Settings.from_dict(settings)) if settings else None

  def check(path):
    try:
      reader = c2pa.Reader.try_create(path, context=context)
    except c2pa.C2paError.NotSupported:  # a format C2PA does not cover (BMP): nothing to say
      return None
    except c2pa.C2paError as e:
      return f"c2pa: unreadable ({' '.join(str(e).split()).rstrip('.')})"
    if reader is None:
      return None
    with reader:
      return describe(reader.get_validation_state(), reader.get_validation_results(),
                      reader.get_active_manifest())
  return check


def describe(state, results, manifest):
  """One phrase for a Reader's validation state, results and active manifest: `c2pa: Trusted,
  created by gan_jax 0.1.0, trainedAlgorithmicMedia, signed by NAME`, or `c2pa: Invalid: WHY
  (CODE)`."""
  failures = ((results or {}).get("activeManifest") or {}).get("failure") or []
  if state == "Invalid" or not manifest:  # say what broke it, before an untrusted signer
    first = next((f for f in failures if f.get("code") != "signingCredential.untrusted"),
                 failures[0] if failures else {})
    why = first.get("explanation") or "no reason given"
    return f"c2pa: Invalid: {why}" + (f" ({first['code']})" if first.get("code") else "")
  words = [state or "unknown state"]
  if any(f.get("code") == "signingCredential.untrusted" for f in failures):
    words[0] += " (signer not trusted here: --trust=CA.pem)"
  generator = (manifest.get("claim_generator_info") or [{}])[0]
  if generator.get("name"):
    words.append(f"created by {generator['name']} {generator.get('version', '')}".strip())
  for assertion in manifest.get("assertions") or []:
    if assertion.get("label", "").startswith("c2pa.actions"):
      for action in (assertion.get("data") or {}).get("actions") or []:
        if action.get("action") == "c2pa.created" and action.get("digitalSourceType"):
          words.append(action["digitalSourceType"].rsplit("/", 1)[-1])
  signer = (manifest.get("signature_info") or {}).get("common_name")
  if signer:
    words.append(f"signed by {signer}")
  return "c2pa: " + ", ".join(words)


def make_test_cert(out):
  """Writes OUT/ca.pem (a test CA), OUT/cert.pem (a certificate it issued, with what C2PA asks of
  a signer's: an organisation, keyUsage digitalSignature, the emailProtection EKU, subject and
  authority key identifiers) and OUT/key.pem (its P-256 key); returns their paths. The CA's key
  is not kept. For tests and trials only: no trust list holds this CA."""
  _, x509 = _libraries("make-test-cert")
  from cryptography.hazmat.primitives import hashes, serialization
  from cryptography.hazmat.primitives.asymmetric import ec
  from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
  paths = [os.path.join(out, name) for name in ("ca.pem", "cert.pem", "key.pem")]
  for path in paths:
    if os.path.exists(path):
      raise UserError(f"{path} exists: choose another --out, or remove the old test certificate "
                      "first.")
  now = datetime.datetime.now(datetime.timezone.utc)

  def name(common):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gan_jax test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])

  def certificate(subject, key, issuer, issuer_key, ca):
    usage = dict(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                 encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
               .add_extension(x509.KeyUsage(**usage), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), False))
    if not ca:
      builder = builder.add_extension(x509.ExtendedKeyUsage(
          [ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
    return builder.sign(issuer_key, hashes.SHA256())
  ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
  ca_name = name("gan_jax test CA (trusted by no one)")
  ca = certificate(ca_name, ca_key, ca_name, ca_key, True)
  cert = certificate(name("gan_jax test signer"), key, ca_name, ca_key, False)
  os.makedirs(out, exist_ok=True)
  pem = serialization.Encoding.PEM
  for path, data in zip(paths, (ca.public_bytes(pem), cert.public_bytes(pem), key.private_bytes(
      pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if path == paths[2]
                      else 0o644), "wb") as f:
      f.write(data)
  return paths
