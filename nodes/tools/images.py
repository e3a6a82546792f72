"""``generate_image``: OpenAI's images API when a key is set, else a labelled offline stand-in.

The stand-in is a real PNG (Pillow) showing the prompt, and both the tool result and the
artifact say plainly that it is a stand-in and which setting enables real generation.
"""

from __future__ import annotations

import base64
import hashlib
import textwrap
from pathlib import Path
from typing import Literal

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from loom.settings import Settings, get_settings
from services.paths import artifact_url, thread_artifacts_dir
from state.common import Artifact, RunContext

ImageSize = Literal["1024x1024", "1792x1024", "1024x1792"]
STAND_IN_SENTENCE = (
    "This picture is an offline stand-in that shows your description, not a generated image; "
    "real image generation needs an OpenAI API key (OPENAI_API_KEY)."
)


def render_stand_in(prompt: str, size: ImageSize, out_dir: Path) -> Path:
    from PIL import Image, ImageDraw

    width, height = (int(n) // 4 for n in size.split("x"))
    digest = hashlib.sha256(prompt.encode()).digest()
    background = (digest[0] // 2 + 40, digest[1] // 2 + 40, digest[2] // 2 + 60)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, width - 9, height - 9), outline=(255, 255, 255), width=2)
    lines = ["OFFLINE STAND-IN", "", *textwrap.wrap(prompt, width=max(16, width // 8))[:10]]
    draw.multiline_text((20, 20), "\n".join(lines), fill=(255, 255, 255), spacing=6)
    path = out_dir / f"image-{digest.hex()[:12]}.png"
    image.save(path, format="PNG")
    return path


def generate_with_openai(prompt: str, size: ImageSize, out_dir: Path, settings: Settings) -> Path:
    from openai import OpenAI

    assert settings.openai_api_key is not None
    client = OpenAI(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url)
    result = client.images.generate(model=settings.image_model, prompt=prompt, size=size, response_format="b64_json")
    encoded = result.data[0].b64_json if result.data else None
    if not encoded:
        raise RuntimeError("the images API returned no image")
    path = out_dir / f"image-{hashlib.sha256(prompt.encode()).hexdigest()[:12]}.png"
    path.write_bytes(base64.b64decode(encoded))
    return path


@tool(response_format="content_and_artifact")
def generate_image(
    prompt: str, runtime: ToolRuntime[RunContext], size: ImageSize = "1024x1024"
) -> tuple[str, Artifact]:
    """Create an image from a text description and save it as a PNG."""
    settings = get_settings()
    out_dir = thread_artifacts_dir(settings, runtime.config, (runtime.context or RunContext()).user_id)
    if settings.openai_api_key:
        path = generate_with_openai(prompt, size, out_dir, settings)
        url = artifact_url(runtime.config, path)
        artifact = Artifact(kind="image", name=path.name, url=url, title=prompt[:80], media_type="image/png")
        return f"Image generated with {settings.image_model}: {url}", artifact
    path = render_stand_in(prompt, size, out_dir)
    url = artifact_url(runtime.config, path)
    title = f"[stand-in] {prompt[:70]}"
    artifact = Artifact(kind="image", name=path.name, url=url, title=title, media_type="image/png")
    return f"Image: {url}. {STAND_IN_SENTENCE}", artifact
