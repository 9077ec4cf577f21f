"""What a picture the library wrote says about itself, in its own metadata.

An XMP packet (PNG: the iTXt chunk `XML:com.adobe.xmp`; JPEG: the APP1 XMP segment) holds the IPTC
digital source type `trainedAlgorithmicMedia`, the standard word for "made by a trained model", and
`gan_jax:` fields naming what made it: library version, config, run, checkpoint step, a hash of
the generator's weights and the seed. exiftool and PIL read it; `gan-jax provenance PATH` prints
it back. Metadata is lost when a file is stripped or re-encoded by other tools.
"""
import hashlib
import io
import os
import xml.etree.ElementTree as ElementTree
from importlib import metadata
from xml.sax.saxutils import quoteattr

import jax
import numpy as np
from PIL import Image, PngImagePlugin

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
OURS = "urn:gan-jax:provenance:1"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PNG_KEY = "XML:com.adobe.xmp"
FIELDS = ("config", "run", "step", "seed", "weights")  # gan_jax: attributes, in this order


def version():
  try:
    return metadata.version("gan-jax")
  except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    return "unknown"


def weights_hash(params):
  """The first 16 hex digits of the SHA-256 of a weights tree: which generator, not its name."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()[:16]


def label(config_name, run, step, seed, weights):
  """The fields a picture made by run `run` at checkpoint `step` carries."""
  return {"config": config_name, "run": run, "step": int(step), "seed": int(seed),
          "weights": weights}


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
  """The file bytes of a PIL image with `packet` (`xmp_packet`'s) embedded."""
  out = io.BytesIO()
  if image_format == "png":
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, packet, zip=True)  # compressed: small pictures stay small
    image.save(out, "png", pnginfo=info)
  else:
    image.save(out, "jpeg", quality=quality, xmp=packet.encode())
  return out.getvalue()


def read(path):
  """The provenance a picture carries: {"source_type", "tool", and gan_jax's fields}, or None when
  it has no XMP digital source type (most pictures)."""
  with Image.open(path) as image:
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


def describe(found):
  """One line for `read`'s result."""
  if found is None:
    return "no provenance"
  kind = found["source_type"].rsplit("/", 1)[-1]
  made = ", ".join(f"{k} {found[k]}" for k in FIELDS if k in found)
  return f"{kind} ({found.get('tool', 'unknown tool')}" + (f"; {made})" if made else ")")


def report(path):
  """(path, `describe` line) for a picture or every picture under a folder."""
  from gan_jax.data.folder import walk_images
  from gan_jax.errors import UserError
  if os.path.isdir(path):
    relpaths, _ = walk_images(path)
    paths = [os.path.join(path, p) for p in relpaths]
  elif os.path.exists(path):
    paths = [path]
  else:
    raise UserError(f"{path} does not exist: give a picture or a folder of pictures.")
  lines = []
  for p in paths:
    try:
      lines.append((p, describe(read(p))))
    except (OSError, SyntaxError, ValueError):  # pillow's errors for unreadable files
      lines.append((p, "unreadable"))
  return lines
