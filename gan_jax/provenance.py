"""What a picture or clip the library wrote says about itself, in its own metadata.

An XMP packet (PNG: the iTXt chunk `XML:com.adobe.xmp`; JPEG: the APP1 XMP segment; GIF: an XMP
application extension; MP4: a top-level XMP `uuid` box, both as the XMP specification (part 3)
lays them out) holds the IPTC digital source type `trainedAlgorithmicMedia`, the standard word for
"made by a trained model", and `gan_jax:` fields naming what made it: library version, config,
run, checkpoint step, a hash of the generator's weights and the seed. exiftool reads it from all
four; PIL from PNG and JPEG (pillow neither writes nor reads GIF XMP, and does not open MP4s:
`read` parses those two itself); `gan-jax provenance PATH` prints it back, and the state of a
C2PA manifest where `--sign` signed the file (`credentials`). Metadata is lost when a file is
stripped or re-encoded by other tools. No jax at import: `reporting` labels what it
writes with this.
"""
import contextlib
import hashlib
import io
import os
import struct
import xml.etree.ElementTree as ElementTree
from importlib import metadata
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, PngImagePlugin

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
OURS = "urn:gan-jax:provenance:1"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PNG_KEY = "XML:com.adobe.xmp"
FIELDS = ("config", "run", "step", "seed", "weights")  # gan_jax: attributes, in this order
GIF_APP = b"XMP DataXMP"  # the application extension's identifier and authentication code
# After the packet: readers that walk it as sub-blocks land in here and are led to a 0 (the end).
GIF_TRAILER = bytes([1, *range(255, -1, -1), 0])
MP4_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")  # the XMP box's uuid


def version():
  try:
    return metadata.version("gan-jax")
  except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    return "unknown"


def weights_hash(params):
  """The first 16 hex digits of the SHA-256 of a weights tree: which generator, not its name."""
  import jax  # pylint: disable=g-import-not-at-top  (slow; only hashing needs it)
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()[:16]


def label(config_name, run, step, seed, weights):
  """The fields a picture made by run `run` at checkpoint `step` carries. seed: the draw's (an
  int, several ints for a walk through several, or None where no seed drew it: translations,
  codes read from a file)."""
  if seed is not None:
    seed = int(seed) if np.ndim(seed) == 0 else ",".join(str(int(s)) for s in seed)
  fields = {"config": config_name, "run": run, "step": int(step), "seed": seed,
            "weights": weights}
  return {k: v for k, v in fields.items() if v is not None}


def of_state(config, workdir, state, seed=None, ema=True):
  """`label`'s fields of what a run's `state` (a GANState; a train.num_seeds run's stacked one:
  all its copies' G hashed together) draws with `seed`; `ema`: whether G's EMA weights draw
  (where kept), whose hash is taken. Hashing takes a moment: once per batch of files, not per
  file."""
  from gan_jax.games.common import g_params  # pylint: disable=g-import-not-at-top  (jax)
  step = np.ravel(np.asarray(state.step))[0]  # stacked copies train in step
  return label(config.get("name") or "", os.path.abspath(workdir), step, seed,
               weights_hash(g_params(state, ema)))


def of_model(model, seed=None):
  """`of_state` of a loaded `api.Model`: what its G draws with `seed`."""
  return of_state(model.config, model.workdir, model.state, seed, model.ema)


def xmp_packet(fields):
  """The XMP packet of `label`'s fields (str)."""
  ours = "".join(f"\n    gan_jax:{k}={quoteattr(str(fields[k]))}" for k in FIELDS if k in fields)
  return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
          '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
          f' <rdf:RDF xmlns:rdf="{RDF}">\n'
          f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT}"\n'
          f'    xmlns:xmp="{XMP_BASIC}" xmlns:gan_jax="{OURS}"\n'
          f'    Iptc4xmpExt:DigitalSourceType="{SOURCE_TYPE}"\n'
          f'    xmp:CreatorTool={quoteattr("gan_jax " + version())}{ours}/>\n'
          ' </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="r"?>')


def encode(image, packet, image_format="png", quality=95):
  """The file bytes of a PIL image as PNG or JPEG with `packet` (`xmp_packet`'s; None: none)
  embedded."""
  out = io.BytesIO()
  if image_format == "png":
    info = PngImagePlugin.PngInfo()
    if packet:
      info.add_itxt(PNG_KEY, packet, zip=True)  # compressed: small pictures stay small
    image.save(out, "png", pnginfo=info)
  else:
    image.save(out, "jpeg", quality=quality, **({"xmp": packet.encode()} if packet else {}))
  return out.getvalue()


def embed(data, packet, file_format):
  """The file bytes `data` of a GIF or an MP4 with `packet` embedded: a GIF gets an XMP
  application extension ahead of its first frame (after the global colour table), an MP4 a
  top-level XMP `uuid` box after its others (players skip boxes they do not know)."""
  if file_format == "gif":
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    extension = b"\x21\xff\x0b" + GIF_APP + packet.encode() + GIF_TRAILER
    return data[:at] + extension + data[at:]
  if file_format == "mp4":
    body = MP4_UUID + packet.encode()
    return data + struct.pack(">I4s", 8 + len(body), b"uuid") + body
  raise ValueError(f"embed writes into gif or mp4 files, not {file_format!r}")


def read(path):
  """The provenance a picture or clip carries (a path or a binary file object): {"source_type",
  "tool", and gan_jax's fields}, or None when it has no XMP digital source type (most pictures).
  PIL reads PNG and JPEG (any format it reads XMP of); GIF and MP4 are parsed here."""
  with (open(path, "rb") if isinstance(path, (str, os.PathLike)) else
        contextlib.nullcontext(path)) as f:
    start = f.tell()
    head = f.read(12)
    f.seek(start)
    if head[:6] in (b"GIF87a", b"GIF89a"):
      packet = _gif_packet(f)
    elif head[4:8] == b"ftyp":  # ISO base media: MP4, MOV
      packet = _mp4_packet(f)
    else:
      with Image.open(f) as image:
        packet = image.info.get(PNG_KEY) or image.info.get("xmp")
  if not packet:
    return None
  try:
    root = ElementTree.fromstring(packet.decode() if isinstance(packet, bytes) else packet)
  except ElementTree.ParseError:
    return None
  found = {}
  for description in root.iter(f"{{{RDF}}}Description"):
    values = dict(description.attrib)
    values.update({child.tag: (child.text or "").strip() for child in description})
    for key, value in values.items():
      namespace, _, name = key[1:].partition("}")
      if (namespace, name) == (IPTC_EXT, "DigitalSourceType"):
        found["source_type"] = value
      elif (namespace, name) == (XMP_BASIC, "CreatorTool"):
        found["tool"] = value
      elif namespace == OURS:
        found[name] = value
  return found if "source_type" in found else None


def _gif_packet(f):
  """The packet of a GIF's XMP application extension (bytes), or None: its blocks walked up to
  the extension."""
  head = f.read(13)
  if len(head) < 13:
    return None
  if head[10] & 0x80:  # a global colour table
    f.seek(3 << ((head[10] & 7) + 1), 1)
  while True:
    kind = f.read(1)
    if kind == b"\x2c":  # an image: descriptor, local colour table, LZW code size, sub-blocks
      descriptor = f.read(9)
      if len(descriptor) < 9:
        return None
      f.seek((3 << ((descriptor[8] & 7) + 1) if descriptor[8] & 0x80 else 0) + 1, 1)
    elif kind != b"\x21":  # not an extension either: the trailer, or a cut-off file
      return None
    label = f.read(1) if kind == b"\x21" else None
    first = True
    while (size := f.read(1)) not in (b"", b"\x00"):
      block = f.read(size[0])
      if first and label == b"\xff" and block == GIF_APP:  # the packet, unblocked, then ours
        data = b""
        while GIF_TRAILER[:2] not in data and (more := f.read(4096)):
          data += more
        return data.partition(GIF_TRAILER[:2])[0]
      first = False


def _mp4_packet(f):
  """The packet of an MP4's top-level XMP `uuid` box (bytes), or None."""
  while len(head := f.read(8)) == 8:
    size, kind = struct.unpack(">I4s", head)
    used = 8
    if size == 1:  # a 64-bit size follows
      size, used = struct.unpack(">Q", f.read(8).rjust(8, b"\x00"))[0], 16
    if size and size < used:  # not a box: a damaged file
      return None
    if kind == b"uuid":
      used += 16
      if f.read(16) == MP4_UUID:
        return f.read(max(size - used, 0)) if size else f.read()
    if size == 0:  # the last box, to the end of the file
      return None
    f.seek(max(size - used, 0), 1)  # always forward: a damaged file ends the walk
  return None


def describe(found):
  """One line for `read`'s result."""
  if found is None:
    return "no provenance"
  kind = found["source_type"].rsplit("/", 1)[-1]
  made = ", ".join(f"{k} {found[k]}" for k in FIELDS if k in found)
  return f"{kind} ({found.get('tool', 'unknown tool')}" + (f"; {made})" if made else ")")


def report(path, trust=None):
  """(path, `describe` line) for a picture or clip, or every one under a folder (images, GIFs
  and MP4s); where c2pa-python is installed and a file holds a C2PA manifest, the line ends with
  its state (`credentials.checker`; trust: a PEM file of CA certificates to trust)."""
  from gan_jax import credentials
  from gan_jax.data import folder, images
  from gan_jax.errors import UserError
  if os.path.isdir(path):
    relpaths, _ = folder.walk_images(path, images.EXTENSIONS + (".gif", ".mp4"))
    paths = [os.path.join(path, p) for p in relpaths]
  elif os.path.exists(path):
    paths = [path]
  else:
    raise UserError(f"{path} does not exist: give a picture, a clip or a folder of them.")
  check = credentials.checker(trust)
  lines = []
  for p in paths:
    try:
      line = describe(read(p))
    except (OSError, SyntaxError, ValueError, struct.error):  # pillow's and ours: unreadable
      line = "unreadable"
    signed = check and check(p)
    lines.append((p, f"{line}; {signed}" if signed else line))
  return lines
