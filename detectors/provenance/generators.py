"""Names of image generators as they appear in ``Software`` tags, PNG text and C2PA claim generators.

Matching is case-insensitive and on word boundaries, so that e.g. Imagenomic (a retouching plug-in) is not read
as Google Imagen (which is left out for that reason). The list:

=====================  ===========================================================
generator              pattern (regex, case-insensitive)
=====================  ===========================================================
Stable Diffusion       ``stable[ _-]?diffusion``
Midjourney             ``midjourney``
DALL-E                 ``dall[ ·?_-]?e`` (DALL-E, DALL·E, DALLE)
OpenAI / ChatGPT       ``openai``, ``chatgpt``
Adobe Firefly          ``adobe[ _]firefly``
NovelAI                ``novel ?ai``
ComfyUI                ``comfy ?ui``
AUTOMATIC1111 web UI   ``automatic1111``, ``stable-diffusion-webui``, ``a1111``
InvokeAI               ``invoke ?ai``
Generated Photos       ``generated[ .]photos``
DreamStudio            ``dream ?studio``
Fooocus                ``fooocus``
DiffusionBee           ``diffusion ?bee``
Draw Things            ``draw ?things``
Leonardo.Ai            ``leonardo\\.ai``
Ideogram               ``ideogram``
NightCafe              ``nightcafe``
Craiyon                ``craiyon``
Bing Image Creator     ``bing image creator``
Playground AI          ``playground ?ai``
SwarmUI                ``swarm ?ui``
FLUX.1                 ``flux\\.1``
=====================  ===========================================================
"""

from __future__ import annotations

import re

_GENERATORS: tuple[tuple[str, str], ...] = (
    ("Stable Diffusion", r"stable[ _-]?diffusion"),
    ("Midjourney", r"midjourney"),
    ("DALL-E", r"dall[ ·?_-]?e"),  # "?" is how ASCII EXIF writers replace the middle dot
    ("OpenAI", r"openai|chatgpt"),
    ("Adobe Firefly", r"adobe[ _]firefly"),
    ("NovelAI", r"novel ?ai"),
    ("ComfyUI", r"comfy ?ui"),
    ("AUTOMATIC1111 web UI", r"automatic1111|stable-diffusion-webui|a1111"),
    ("InvokeAI", r"invoke ?ai"),
    ("Generated Photos", r"generated[ .]photos"),
    ("DreamStudio", r"dream ?studio"),
    ("Fooocus", r"fooocus"),
    ("DiffusionBee", r"diffusion ?bee"),
    ("Draw Things", r"draw ?things"),
    ("Leonardo.Ai", r"leonardo\.ai"),
    ("Ideogram", r"ideogram"),
    ("NightCafe", r"nightcafe"),
    ("Craiyon", r"craiyon"),
    ("Bing Image Creator", r"bing image creator"),
    ("Playground AI", r"playground ?ai"),
    ("SwarmUI", r"swarm ?ui"),
    ("FLUX.1", r"flux\.1"),
)

_PATTERNS = tuple((name, re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE)) for name, pattern in _GENERATORS)

MAX_MATCHED_CHARS = 4096  # only the start of a long text is searched


def generator_name(text: str) -> str | None:
    """The generator named in ``text`` (a Software tag, a PNG text value), or None."""
    head = text[:MAX_MATCHED_CHARS]
    for name, pattern in _PATTERNS:
        if pattern.search(head):
            return name
    return None
