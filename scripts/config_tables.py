"""Rewrite the field tables at the end of docs/configuration.md from the pydantic models."""

from pathlib import Path

from deepvideo_r1.config import TrainConfig, describe_fields

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def tables() -> str:
    lines, last = [], None
    for r in describe_fields():
        sec = r["name"].split(".")[0]
        if sec != last:
            doc = TrainConfig.model_fields[sec].annotation.__doc__.strip().splitlines()[0]
            lines += ["", f"### `{sec}` — {doc}", "", "| field | type | default | effect |"]
            lines.append("|---|---|---|---|")
            last = sec
        t, d = (r[k].replace("|", "\\|") for k in ("type", "default"))
        lines.append(f"| `{r['name']}` | `{t}` | `{d}` | {r['description']} |")
    return "\n".join(lines).lstrip("\n") + "\n"


if __name__ == "__main__":
    text = DOC.read_text()
    DOC.write_text(text[: text.index("### `model`")] + tables())
