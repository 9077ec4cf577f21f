"""C2PA content credentials (`gan_jax.credentials`): `--sign` signs every labelled picture and clip
the library writes (PNG, JPEG, GIF, MP4), the manifest validates with the test CA as a trust
anchor, the XMP label survives signing, a changed pixel breaks the signature, `gan-jax
provenance` reports the state, and every bad certificate, key or flag is one sentence, exit 2."""
import datetime
import os
import subprocess
import sys

import numpy as np
import pytest

c2pa = pytest.importorskip("c2pa", reason='the c2pa extra: pip install "gan-jax[c2pa]"')
pytest.importorskip("cryptography")

from conftest import REPO, config_path  # noqa: E402
from gan_jax import cli, credentials, provenance, reporting  # noqa: E402

FIELDS = provenance.label("dcgan_digits", "/runs/dcgan_digits", 2, 3, "0123456789abcdef")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
  """ca.pem, cert.pem and key.pem of `gan-jax provenance make-test-cert`."""
  out = tmp_path_factory.mktemp("certs")
  assert cli.main(["provenance", "make-test-cert", f"--out={out}"]) == 0
  return {name: str(out / f"{name}.pem") for name in ("ca", "cert", "key")}


@pytest.fixture(scope="module")
def signer(certs):
  return credentials.Signer(certs["cert"], certs["key"])


@pytest.fixture(scope="module")
def run(certs, tmp_path_factory):
  """A 2-step smoke run of dcgan_digits, trained with --sign (its sample grid signed)."""
  workdir = tmp_path_factory.mktemp("c2pa_run") / "dcgan"
  assert cli.main(["train", f"--config={config_path('dcgan_digits')}", f"--workdir={workdir}",
                   "--noprogress", "--config.train.steps=2",
                   f"--sign={certs['cert']},{certs['key']}"]) == 0
  return str(workdir)


def manifest(path, trust=None):
  """(validation state, active manifest) of a file, with `trust` (a PEM file) as trust anchor."""
  settings = {"trust": {"user_anchors": open(trust).read()}} if trust else {}
  context = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
  with c2pa.Reader(path, context=context) as reader:
    return reader.get_validation_state(), reader.get_active_manifest()


def tamper(data, kind):
  """`data` with one byte of its pixels changed: in PNG's IDAT, after JPEG's start of scan, in
  the GIF's last frame, in the MP4's mdat."""
  at = {"png": lambda: data.index(b"IDAT") + 8, "jpeg": lambda: data.rindex(b"\xff\xda") + 20,
        "gif": lambda: len(data) - 8, "mp4": lambda: data.index(b"mdat") + 40}[kind]()
  changed = bytearray(data)
  changed[at] = changed[at] ^ 0x01 if changed[at] ^ 0x01 != 0xFF else changed[at] ^ 0x02
  return bytes(changed)


def write_each(folder):
  """A labelled picture or clip in each format the library writes: {kind: path}."""
  rng = np.random.default_rng(0)
  picture = rng.integers(0, 256, (64, 64, 3), np.uint8)
  frames = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  paths = {"png": folder / "a.png", "jpeg": folder / "a.jpg", "gif": folder / "a.gif",
           "mp4": folder / "a.mp4"}
  for kind in ("png", "jpeg"):
    reporting.save_picture(str(paths[kind]), picture, FIELDS)
  for kind in ("gif", "mp4"):
    reporting.save_animation(str(paths[kind]), frames, provenance=FIELDS)
  return {k: str(v) for k, v in paths.items()}


def test_every_format_is_signed_and_validates(signer, certs, tmp_path):
  with credentials.signing(signer):
    paths = write_each(tmp_path)
  for kind, path in paths.items():
    state, active = manifest(path, certs["ca"])
    assert state == "Trusted", (kind, state)
    assert manifest(path)[0] == "Valid"  # the signature holds; the test CA is on no trust list
    assert active["claim_generator_info"][0]["name"] == "gan_jax"
    assert active["claim_generator_info"][0]["version"] == provenance.version()
    labels = {a["label"]: a["data"] for a in active["assertions"]}
    [action] = labels["c2pa.actions.v2"]["actions"]
    assert action == {"action": "c2pa.created", "digitalSourceType": provenance.SOURCE_TYPE}
    assert labels[credentials.ASSERTION] == FIELDS
    found = provenance.read(path)  # the XMP label, inside what was signed
    assert {k: v for k, v in found.items() if k in provenance.FIELDS} == {
        k: str(v) for k, v in FIELDS.items()}


def test_a_changed_pixel_breaks_the_signature(signer, certs, tmp_path):
  with credentials.signing(signer):
    paths = write_each(tmp_path)
  for kind, path in paths.items():
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(tamper(data, kind))
    state, _ = manifest(path, certs["ca"])
    assert state == "Invalid", kind
    line = credentials.checker(certs["ca"])(path)
    assert line.startswith("c2pa: Invalid: ") and "mismatch" in line, line


def test_only_labelled_files_are_signed_and_only_while_asked(signer, tmp_path):
  picture = np.zeros((8, 8), np.uint8)
  with credentials.signing(signer):
    reporting.save_picture(str(tmp_path / "chart.png"), picture)  # no label: not a model's
  reporting.save_picture(str(tmp_path / "later.png"), picture, FIELDS)  # the block has ended
  check = credentials.checker()
  assert check(str(tmp_path / "chart.png")) is None and check(str(tmp_path / "later.png")) is None
  size = len(reporting.encode_picture(picture, FIELDS))
  with credentials.signing(signer):
    assert len(reporting.encode_picture(picture, FIELDS)) > size + 1000


def test_verbs_sign_and_provenance_reads_it_back(run, certs, tmp_path, capsys):
  sign = f"--sign={certs['cert']},{certs['key']}"
  assert cli.main(["sample", f"--workdir={run}", "--num=4", "--seed=3", sign,
                   f"--out={tmp_path / 's.png'}"]) == 0
  assert cli.main(["sample", f"--workdir={run}", "--interpolate=2", "--num=2", sign,
                   f"--out={tmp_path / 'walk.gif'}"]) == 0
  assert cli.main(["export", f"--workdir={run}", f"--out={tmp_path / 'export'}", "--num=3",
                   "--image_format=jpg", "--noprogress", sign]) == 0
  assert cli.main(["sample", f"--workdir={run}", "--num=1", f"--out={tmp_path / 'plain.png'}"]) == 0
  paths = [tmp_path / "s.png", tmp_path / "walk.gif", tmp_path / "walk.png",
           *sorted((tmp_path / "export").glob("*.jpg")),
           os.path.join(run, "samples", "step_000002.png")]
  assert len(paths) == 7
  capsys.readouterr()
  for path in paths:
    assert manifest(str(path), certs["ca"])[0] == "Trusted", path
    assert cli.main(["provenance", str(path), f"--trust={certs['ca']}"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: trainedAlgorithmicMedia (gan_jax "), line
    assert line.endswith(f"; c2pa: Trusted, created by gan_jax {provenance.version()}, "
                         "trainedAlgorithmicMedia, signed by gan_jax test signer"), line
  assert cli.main(["provenance", str(tmp_path)]) == 0  # a folder, no trust anchor
  lines = dict(l.split(": ", 1) for l in capsys.readouterr().out.strip().splitlines())
  assert "c2pa: Valid (signer not trusted here: --trust=CA.pem), created by gan_jax" in (
      lines[str(tmp_path / "s.png")])
  assert "; c2pa:" not in lines[str(tmp_path / "plain.png")]  # no --sign: the XMP label only
  assert lines[str(tmp_path / "plain.png")].startswith("trainedAlgorithmicMedia")


def test_a_folder_named_make_test_cert_is_read_as_a_path(tmp_path, monkeypatch, capsys):
  reporting.save_picture(str(tmp_path / "make-test-cert" / "a.png"), np.zeros((4, 4), np.uint8))
  monkeypatch.chdir(tmp_path)
  assert cli.main(["provenance", "./make-test-cert"]) == 0
  assert capsys.readouterr().out.strip() == "./make-test-cert/a.png: no provenance"
  assert cli.main(["provenance", "make-test-cert"]) == 2
  assert_one_sentence(capsys, "read as ./make-test-cert")


def assert_one_sentence(capsys, expected):
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err and err.endswith("."), err


def issue(folder, **changes):
  """cert.pem and key.pem of a certificate like make-test-cert's, issued by a fresh CA, with
  `changes`: eku=False leaves out the extended key usage, days=-1 makes it expired."""
  from cryptography import x509
  from cryptography.hazmat.primitives import hashes, serialization
  from cryptography.hazmat.primitives.asymmetric import ec
  from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
  now = datetime.datetime.now(datetime.timezone.utc)
  ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
  name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
  ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")])
  builder = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
             .public_key(key.public_key()).serial_number(7)
             .not_valid_before(now - datetime.timedelta(days=30))
             .not_valid_after(now + datetime.timedelta(days=changes.get("days", 30)))
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), False))
  if changes.get("eku", True):
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "cert.pem").write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(
      serialization.Encoding.PEM))
  (folder / "key.pem").write_bytes(key.private_bytes(
      serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
      serialization.NoEncryption()))
  return f"{folder / 'cert.pem'},{folder / 'key.pem'}"


def bad_sign(case, certs, tmp_path):
  """--sign's value for each refused case."""
  if case == "no eku":
    return issue(tmp_path / "no_eku", eku=False)
  if case == "expired":
    return issue(tmp_path / "expired", days=-1)
  if case == "other key":
    return f"{certs['cert']},{issue(tmp_path / 'other').split(',')[1]}"
  if case == "not a certificate":
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    return f"{tmp_path / 'junk.pem'},{certs['key']}"
  if case == "not a key":
    return f"{certs['cert']},{certs['cert']}"
  return {"one file": certs["cert"], "three files": f"{certs['cert']},{certs['key']},x",
          "no cert": f"{tmp_path / 'none.pem'},{certs['key']}",
          "no key": f"{certs['cert']},{tmp_path / 'none.pem'}"}[case]


BAD_SIGN = {
    "one file": "must be CERT,KEY: a PEM certificate chain file and its PEM private key file",
    "three files": "must be CERT,KEY",
    "no cert": "none.pem could not be read (No such file or directory)",
    "no key": "The private key file",
    "not a certificate": "holds no PEM certificate",
    "not a key": "cannot be used as the signing key (it is not a PEM private key)",
    "other key": "does not belong to the certificate",
    "no eku": "refused the certificate",
    "expired": "the certificate was not valid at time of signing (it is valid from",
}


@pytest.mark.parametrize("case", sorted(BAD_SIGN))
def test_bad_sign_is_one_sentence(case, certs, tmp_path, capsys):
  out = tmp_path / "s.png"
  assert cli.main(["sample", "--workdir=/nonexistent", f"--out={out}",
                   f"--sign={bad_sign(case, certs, tmp_path)}"]) == 2
  assert_one_sentence(capsys, BAD_SIGN[case])
  assert not out.exists()


def test_the_library_says_why_and_we_say_what(certs, tmp_path, capsys):
  """The library refuses a certificate without an EKU in few words; the sentence adds which
  part of the certificate it lacks."""
  assert cli.main(["upscale", "--workdir=/nonexistent", "--input=x", "--out=y",
                   f"--sign={issue(tmp_path, eku=False)}"]) == 2
  assert_one_sentence(capsys, "the certificate is invalid (it has no extended key usage the "
                      "library signs with: emailProtection, timeStamping or OCSPSigning)")


def test_other_errors_are_one_sentence(certs, tmp_path, monkeypatch, capsys):
  sign = f"--sign={certs['cert']},{certs['key']}"
  assert cli.main(["export", "--workdir=w", "--out=o", "--num=1", "--format=npz", sign]) == 2
  assert_one_sentence(capsys, "--format=npz writes one array file")
  (tmp_path / "junk.pem").write_text("junk\n")
  assert cli.main(["provenance", str(tmp_path), f"--trust={tmp_path / 'junk.pem'}"]) == 2
  assert_one_sentence(capsys, "holds no PEM certificate")
  assert cli.main(["provenance", "make-test-cert", f"--out={os.path.dirname(certs['ca'])}"]) == 2
  assert_one_sentence(capsys, "ca.pem exists")
  assert cli.main(["provenance", "a.png", "b.png"]) == 2
  assert_one_sentence(capsys, "provenance takes one path")
  monkeypatch.setitem(sys.modules, "c2pa", None)  # as where c2pa-python is not installed
  assert cli.main(["translate", "--workdir=w", "--input=x", "--out=y", sign]) == 2
  assert_one_sentence(capsys, 'pip install "gan-jax[c2pa]"')
  assert cli.main(["provenance", str(tmp_path), f"--trust={certs['ca']}"]) == 2
  assert_one_sentence(capsys, 'pip install "gan-jax[c2pa]"')
  assert cli.main(["provenance", str(tmp_path)]) == 0  # no c2pa: the XMP part alone


def test_the_command_exits_2_without_a_traceback(tmp_path):
  out = subprocess.run([sys.executable, "-m", "gan_jax", "sample", "--workdir=w",
                        "--sign=only-one-file.pem"], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": REPO})
  assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
  assert out.stderr.strip().splitlines() == [
      "gan-jax: error: --sign=only-one-file.pem must be CERT,KEY: a PEM certificate chain file "
      "and its PEM private key file, such as --sign=cert.pem,key.pem."]


def test_make_test_cert_says_what_it_wrote(tmp_path, capsys):
  assert cli.main(["provenance", "make-test-cert", f"--out={tmp_path}"]) == 0
  out = capsys.readouterr().out
  assert "for tests and trials only" in out and f"--sign={tmp_path / 'cert.pem'}," in out
  assert oct(os.stat(tmp_path / "key.pem").st_mode & 0o777) == "0o600"
  assert sorted(os.listdir(tmp_path)) == ["ca.pem", "cert.pem", "key.pem"]
