"""A2UI: the JSON component set of agent-pushed UI surfaces, and where surfaces live. Pure.

A surface is `{surfaceId, title?, components: [...]}`; components (docs/http-api.md):

| type | fields |
|---|---|
| `text` | `text` |
| `markdown` | `markdown`: paragraphs, bold, em, code, https links, `- ` lists |
| `button` | `id`, `label`, `action` (default `click`), `style`: primary/secondary/danger |
| `textField` | `id`, `label?`, `placeholder?`, `value?`, `multiline?`, `submitLabel?`, |
|  | `action` (default `submit`) |
| `list` | `items: [component]`, `ordered?` |
| `card` | `title?`, `children: [component]` |
| `image` | `src` (https, `/canvas/…` or a `data:image/…` URL), `alt` |

Every component may carry an `id`; buttons and text fields must (their actions name it).
Surfaces are files of the `canvas` store, `a2ui/<agentId>/<session name>/<surfaceId>.json`
(session `agent:main:work` → `a2ui/main/work/`; a `:` in the name becomes `/`), so they
survive a reload and an agent can push one with its `canvas_write` tool (whose paths allow
no `:`) or a script with `POST /a2ui/surfaces`.
A user action goes back to the session as a message (`action_message`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from aisopod.catalogue.fields import SessionKey

SURFACE_PREFIX = "a2ui/"
MAX_COMPONENTS = 500
MAX_DEPTH = 8

Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Text = Annotated[str, StringConstraints(max_length=64 * 1024)]
Short = Annotated[str, StringConstraints(max_length=200)]
ImageSrc = Annotated[
    str,
    StringConstraints(
        max_length=2 * 1024 * 1024,
        pattern=r"^(https://|/canvas/|data:image/(png|jpeg|gif|webp);base64,)",
    ),
]


class _Component(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Token | None = None


class TextComponent(_Component):
    type: Literal["text"]
    text: Text


class MarkdownComponent(_Component):
    type: Literal["markdown"]
    markdown: Text


class ButtonComponent(_Component):
    type: Literal["button"]
    id: Token
    label: Short
    action: Token = "click"
    style: Literal["primary", "secondary", "danger"] = "primary"


class TextFieldComponent(_Component):
    type: Literal["textField"]
    id: Token
    label: Short | None = None
    placeholder: Short | None = None
    value: Text | None = None
    multiline: bool = False
    submit_label: Short | None = Field(None, alias="submitLabel")
    action: Token = "submit"


class ListComponent(_Component):
    type: Literal["list"]
    ordered: bool = False
    items: list[Component] = Field(max_length=MAX_COMPONENTS)


class CardComponent(_Component):
    type: Literal["card"]
    title: Short | None = None
    children: list[Component] = Field(max_length=MAX_COMPONENTS)


class ImageComponent(_Component):
    type: Literal["image"]
    src: ImageSrc
    alt: Short = ""


Component = Annotated[
    TextComponent
    | MarkdownComponent
    | ButtonComponent
    | TextFieldComponent
    | ListComponent
    | CardComponent
    | ImageComponent,
    Field(discriminator="type"),
]

ListComponent.model_rebuild()
CardComponent.model_rebuild()


def _count(components: list[Component], depth: int = 1) -> int:
    if depth > MAX_DEPTH:
        raise ValueError(f"components nest deeper than {MAX_DEPTH}")
    total = 0
    for component in components:
        total += 1
        if isinstance(component, ListComponent):
            total += _count(component.items, depth + 1)
        elif isinstance(component, CardComponent):
            total += _count(component.children, depth + 1)
    return total


class Surface(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    surface_id: Token = Field(alias="surfaceId")
    title: Short | None = None
    components: list[Component] = Field(max_length=MAX_COMPONENTS)

    @model_validator(mode="after")
    def _bounded(self) -> Surface:
        if _count(self.components) > MAX_COMPONENTS:
            raise ValueError(f"a surface holds at most {MAX_COMPONENTS} components")
        return self

    def wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class PushSurface(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session_key: SessionKey = Field(alias="sessionKey")
    surface: Surface


class UserAction(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session_key: SessionKey = Field(alias="sessionKey")
    surface_id: Token = Field(alias="surfaceId")
    component_id: Token = Field(alias="componentId")
    action: Token
    value: JsonValue = None


def session_prefix(session_key: str) -> str:
    """The canvas folder of a session's surfaces; `session_key` in canonical form."""
    _, agent_id, name = session_key.split(":", 2)
    return f"{SURFACE_PREFIX}{agent_id}/{name.replace(':', '/')}/"


def surface_object(session_key: str, surface_id: str) -> str:
    return f"{session_prefix(session_key)}{surface_id}.json"


def surface_id_of(name: str, session_key: str) -> str | None:
    """The surface id of a canvas object name, when it is a surface of this session."""
    prefix = session_prefix(session_key)
    if not name.startswith(prefix) or not name.endswith(".json"):
        return None
    rest = name[len(prefix) : -len(".json")]
    return rest if rest and "/" not in rest else None


def action_message(action: UserAction) -> str:
    value = "" if action.value is None else " value=" + orjson.dumps(action.value).decode()
    return (
        f"[a2ui action] surface={action.surface_id} component={action.component_id} "
        f"action={action.action}{value}"
    )
