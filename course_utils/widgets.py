"""Shared ipywidgets playgrounds, with a plain-text fallback where widgets cannot render."""

from __future__ import annotations

from collections.abc import Callable


def prompt_playground(respond: Callable[[str, int], str], prompt: str = "", max_new_tokens: int = 32):
    """A text box, a length slider and a button that shows ``respond(prompt, max_new_tokens)``.

    The first reply is computed immediately, so the cell shows a real answer even where widgets do not render
    (CI, a plain terminal). Returns the widget (or ``None`` without ipywidgets).
    """
    first = respond(prompt, max_new_tokens)
    try:
        import ipywidgets as w
    except ImportError:
        print(f"(ipywidgets not installed: showing one reply)\n> {prompt}\n{first}")
        return None
    box = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="95%", height="70px"))
    length = w.IntSlider(value=max_new_tokens, min=4, max=256, step=4, description="new tokens")
    go = w.Button(description="Generate", button_style="primary")
    print(first)  # the plain-text reply; the widget's own output area fills in on each click
    out = w.Output()

    def on_click(_):
        out.clear_output()
        with out:
            print("…generating")
            reply = respond(box.value, length.value)
            out.clear_output()
            print(reply)

    go.on_click(on_click)
    return w.VBox([box, w.HBox([length, go]), out])
