"""The page of ``retarget ui``: four tabs (Data, Train, Render, Runs) over :mod:`retarget.ui.actions`.

Only layout and wiring live here. Every button calls one function of ``actions``; a
:class:`~retarget.errors.RetargetError` it raises is shown as its one line under the button.
Gradio keeps its uploads and file cache in ``ROOT/.retarget-ui/cache`` so that the app
writes nothing outside ``--root``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

from retarget.errors import RetargetError
from retarget.failures import error_line
from retarget.run.layout import EVAL, REPORT
from retarget.ui import actions
from retarget.ui.paths import Root
from retarget.ui.views import dataset_preview, dataset_summary, load_dataset, run_files

CSS = """
.error-line p { color: #b42318; font-weight: 600; margin: 0; }
.state-line p { margin: 0; }
"""
#: Seconds between refreshes of the training being watched.
REFRESH_S = 2.0


def _line(exc: BaseException) -> str:
    """The one line the CLI would print for ``exc``."""
    return f"error: {error_line(exc)[0]}"


def _guarded(fn: Callable[..., tuple[Any, ...]], outputs: int) -> Callable[..., tuple[Any, ...]]:
    """``fn`` whose error becomes its one line in the last output (the others unchanged); success clears it."""
    import gradio as gr

    @functools.wraps(fn)  # gradio reads fn's signature through it (its gr.Progress parameter)
    def call(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        try:
            return (*fn(*args, **kwargs), "")
        except Exception as exc:  # noqa: BLE001 - every error is a line on the page
            return (*[gr.skip()] * (outputs - 1), _line(exc))

    return call


def _error() -> Any:
    import gradio as gr

    return gr.Markdown("", elem_classes=["error-line"])


def _choices(values: list[str], value: Any = None) -> Any:
    import gradio as gr

    return gr.update(choices=values, value=value) if value is not None else gr.update(choices=values)


def _data_tab(root: Root) -> dict[str, Any]:
    """The Data page: videos in, a dataset out, its preview and manifest."""
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=1):
            videos = gr.Dropdown(root.videos(), multiselect=True, label="Videos (under the app's folder)")
            upload = gr.File(label="Upload a video (saved in videos/)", file_types=["video"], height=120)
            upload_error = _error()
            output = gr.Textbox(label="Dataset folder", placeholder="data/<first video's name>")
            with gr.Row():
                size = gr.Number(256, label="Size (px)", precision=0, minimum=16)
                fps = gr.Number(0, label="Frame rate (0: keep all)", minimum=0)
                max_frames = gr.Number(0, label="Frames per video (0: all)", precision=0, minimum=0)
            with gr.Row():
                align = gr.Radio(["none", "face"], value="none", label="Align")
                frame = gr.Radio(["full", "square"], value="full", label="Frame (align none)")
            overwrite = gr.Checkbox(False, label="Replace an existing dataset")
            button = gr.Button("Extract", variant="primary", elem_id="extract-button")
            error = _error()
        with gr.Column(scale=2):
            dataset = gr.Dropdown(root.datasets(), label="Dataset", allow_custom_value=True)
            summary = gr.Markdown(elem_id="dataset-summary")
            preview = gr.Image(label="Dataset preview", interactive=False, elem_id="dataset-preview")

    def show(name: str) -> tuple[Any, Any]:
        if not name:
            return "", None
        ds = load_dataset(root.inside(name, "dataset"))
        return dataset_summary(ds, name), dataset_preview(ds)

    def uploaded(path: str) -> tuple[Any, Any]:
        saved = actions.save_upload(root, path)
        return _choices(root.videos(), [saved]), None

    def run(names: list[str], out: str, *opts: Any, progress: Any = gr.Progress()) -> tuple[Any, ...]:
        size_, fps_, frames_, align_, frame_, over = opts
        done = actions.extract_videos(
            root, names, out, size=size_ or 256, align=align_, frame=frame_, fps=fps_, max_frames=frames_,
            overwrite=over, report=lambda f, what: progress(f, desc=what),
        )  # fmt: skip
        name = root.rel(done)
        return (_choices(root.datasets(), name), *show(name))

    upload.upload(_guarded(uploaded, 3), [upload], [videos, upload, upload_error])
    dataset.change(_guarded(show, 3), [dataset], [summary, preview, error])
    button.click(
        _guarded(run, 4),
        [videos, output, size, fps, max_frames, align, frame, overwrite],
        [dataset, summary, preview, error],
    )
    return {"videos": videos, "datasets": dataset}


def _train_form(root: Root) -> dict[str, Any]:
    """The Train page's options (left column)."""
    import gradio as gr

    form: dict[str, Any] = {}
    form["datasets"] = gr.Dropdown(root.datasets(), multiselect=True, label="Datasets: A, B (more: one model)")
    form["out"] = gr.Textbox(label="Run folder", placeholder="models/<A>-to-<B>")
    form["preset"] = gr.Radio(
        ["auto", "tiny", "default", "official"], value="auto", label="Preset (auto: picked for the device and time)"
    )
    with gr.Row():
        form["size"] = gr.Number(128, label="Size (px)", info="not with auto", precision=0, minimum=16)
        form["steps"] = gr.Number(10000, label="Steps", precision=0, minimum=1)
        form["time_limit"] = gr.Number(0, label="Time limit (s, 0: none)", minimum=0)
    with gr.Row():
        form["preview_every"] = gr.Number(500, label="Preview every (steps)", precision=0, minimum=1)
        form["checkpoint_every"] = gr.Number(1000, label="Checkpoint every (steps)", precision=0, minimum=1)
    form["overwrite"] = gr.Checkbox(False, label="Start afresh over an existing run")
    return form


def _read_form(*values: Any) -> actions.TrainForm:
    datasets, out, preset, size, steps, limit, preview, checkpoint, overwrite = values
    return actions.TrainForm(
        datasets=tuple(datasets or ()), out=out or "", preset=preset, size=int(size or 128), steps=int(steps or 1),
        time_limit=limit, preview_every=int(preview or 1), checkpoint_every=int(checkpoint or 1), overwrite=overwrite,
    )  # fmt: skip


def _watch(root: Root, name: str, shown: dict[str, Any]) -> tuple[Any, ...]:
    """State line, newest grid, clip and loss chart of run ``name``; files unchanged since ``shown`` are skipped."""
    import gradio as gr

    if not name:
        return ("pick or start a run", None, None, None, {})
    state = actions.training_state(root, name)
    files = run_files(root.inside(name, "run"))
    new: dict[str, Any] = {}
    out: list[Any] = [state]
    for key in ("grid", "clip", "loss_chart"):
        path = getattr(files, key)
        stamp = (name, str(path), path.stat().st_mtime if path else None)
        new[key] = stamp
        out.append(gr.skip() if shown.get(key) == stamp else (str(path) if path else None))
    return (*out, new)


def _train_tab(root: Root) -> dict[str, Any]:
    """The Train page: options, Start; the watched run with Stop, Resume, Start from it, its previews."""
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=1):
            form = _train_form(root)
            start = gr.Button("Start training", variant="primary", elem_id="train-button")
            start_error = _error()
        with gr.Column(scale=2):
            run = gr.Dropdown(actions.run_names(root), label="Run", allow_custom_value=True, elem_id="train-run")
            state = gr.Markdown(elem_id="train-state", elem_classes=["state-line"])
            with gr.Row():
                stop = gr.Button("Stop (save a checkpoint)", elem_id="stop-button")
                resume = gr.Button("Resume", elem_id="resume-button")
                init = gr.Button("Start from this run", elem_id="init-button")
            run_error = _error()
            grid = gr.Image(label="Newest preview", interactive=False, elem_id="train-preview")
            with gr.Row():
                clip = gr.Video(
                    label="Temporal preview", interactive=False, elem_id="train-clip", loop=True, height=280
                )
                chart = gr.Image(label="Loss chart", interactive=False, elem_id="train-chart", height=280)
    shown = gr.State({})
    fields = list(form.values())
    watched = [state, grid, clip, chart, shown]

    def started(job: Any) -> tuple[Any, ...]:
        return (_choices(actions.run_names(root), root.rel(job.run)),)

    def go(*values: Any) -> tuple[Any, ...]:
        return started(actions.start_training(root, _read_form(*values)))

    def go_from(name: str, *values: Any) -> tuple[Any, ...]:
        if not name:
            raise RetargetError("run: pick the run to start from")
        return started(actions.start_training(root, _read_form(*values), init_from=name))

    def halt(name: str) -> tuple[Any, ...]:
        actions.stop_training(root, name)
        return (f"stopping {name}: saving a checkpoint",)

    start.click(_guarded(go, 2), fields, [run, start_error])
    init.click(_guarded(go_from, 2), [run, *fields], [run, run_error])
    resume.click(_guarded(lambda name: started(actions.resume_training(root, name)), 2), [run], [run, run_error])
    stop.click(_guarded(halt, 2), [run], [state, run_error])
    watch = _guarded(lambda name, seen: _watch(root, name, seen), 6)
    run.change(watch, [run, gr.State({})], [*watched, run_error])
    gr.Timer(REFRESH_S).tick(watch, [run, shown], [*watched, run_error], show_progress="hidden")
    return {"datasets": form["datasets"], "runs": run}


def _render_tab(root: Root) -> dict[str, Any]:
    """The Render page: a video and a run (or a face dataset), then the output, side by side, download."""
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=1):
            video = gr.Dropdown(root.videos(), label="Video to translate", allow_custom_value=True)
            mode = gr.Radio(["trained run", "face swap"], value="trained run", label="With")
            run = gr.Dropdown(actions.run_names(root), label="Run", allow_custom_value=True)
            to = gr.Dropdown([], label="Translate to (domain)", allow_custom_value=True)
            faces = gr.Dropdown(actions.face_datasets(root), label="Face dataset (swap)", visible=False)
            output = gr.Textbox(label="Output video", placeholder="renders/<video>_to_<target>.mp4")
            stabilize = gr.Slider(0, 1, value=1.0, step=0.05, label="Temporal smoothing")
            side = gr.Checkbox(True, label="Also write a side-by-side video")
            overwrite = gr.Checkbox(False, label="Replace an existing output")
            button = gr.Button("Render", variant="primary", elem_id="render-button")
            error = _error()
        with gr.Column(scale=2):
            result = gr.Video(label="Output", interactive=False, elem_id="render-output", height=360)
            both = gr.Video(label="Side by side", interactive=False, elem_id="render-side", height=360)
            download = gr.File(label="Download", interactive=False)

    def domains(name: str) -> tuple[Any, ...]:
        names = actions.run_domains(root, name) if name else []
        return (_choices(names, names[1] if len(names) == 2 else (names[0] if names else "")),)

    def go(*values: Any, progress: Any = gr.Progress()) -> tuple[Any, ...]:
        video_, mode_, run_, to_, faces_, out_, stab, side_, over = values
        swap = mode_ == "face swap"
        done, sbs = actions.render_video(
            root, video_ or "", out_ or "", run=None if swap else (run_ or None), to=None if swap else (to_ or None),
            target_faces=(faces_ or None) if swap else None, side_by_side=side_, stabilize=stab, overwrite=over,
            report=lambda f, what: progress(f, desc=what),
        )  # fmt: skip
        return str(done), str(sbs) if sbs else None, [str(p) for p in (done, sbs) if p]

    def switch(value: str) -> tuple[Any, ...]:
        swap = value == "face swap"
        return gr.update(visible=not swap), gr.update(visible=not swap), gr.update(visible=swap)

    run.change(_guarded(domains, 2), [run], [to, error])
    mode.change(switch, [mode], [run, to, faces])
    inputs = [video, mode, run, to, faces, output, stabilize, side, overwrite]
    button.click(_guarded(go, 4), inputs, [result, both, download, error])
    return {"videos": video, "runs": run, "faces": faces}


def _runs_tab(root: Root) -> dict[str, Any]:
    """The Runs page: the ``retarget runs`` table; a run's report page and eval scores."""
    import gradio as gr

    head, rows = actions.runs_table(root)
    refresh = gr.Button("Refresh", size="sm")
    table = gr.Dataframe(rows, headers=head, interactive=False, elem_id="runs-table", wrap=True)
    run = gr.Dropdown(actions.run_names(root), label="Run", allow_custom_value=True)
    link = gr.Markdown(elem_id="run-report")
    scores = gr.JSON(label=f"Eval scores ({EVAL} in the run folder)")
    error = _error()

    def details(name: str) -> tuple[Any, ...]:
        if not name:
            return "", None
        files = run_files(root.inside(name, "run"))
        page = (
            f"[Open the report page of {name}](/gradio_api/file={files.report})"
            if files.report
            else f"{name}: no report page yet (training writes {REPORT} at its first preview)"
        )
        return page, files.eval

    def reload() -> tuple[Any, ...]:
        head_, rows_ = actions.runs_table(root)
        return gr.update(value=rows_, headers=head_), _choices(actions.run_names(root))

    refresh.click(_guarded(reload, 3), [], [table, run, error])
    run.change(_guarded(details, 3), [run], [link, scores, error])
    return {"runs": run, "on_open": (reload, [table, run])}


def create_app(root: Root) -> Any:
    """The gradio Blocks of the app over ``root``."""
    cache = root.app_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # uploads and served copies stay under the root
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    with gr.Blocks(title="retarget", analytics_enabled=False) as app:
        gr.Markdown(f"## retarget: video retargeting\nWorking in `{root.path}`")
        pages = []
        with gr.Tabs():
            for title, build in (
                ("Data", _data_tab),
                ("Train", _train_tab),
                ("Render", _render_tab),
                ("Runs", _runs_tab),
            ):
                with gr.Tab(title, id=title.lower()) as tab:
                    pages.append((tab, build(root)))
        _refresh_lists(app, root, pages)
    return app


def _refresh_lists(app: Any, root: Root, pages: list[tuple[Any, dict[str, Any]]]) -> None:
    """On each page load and tab change, the lists of videos, datasets, runs and face datasets are read again."""
    kinds = ("videos", "datasets", "runs", "faces")
    slots = [(kind, found[kind]) for _, found in pages for kind in kinds if kind in found]
    listers: dict[str, Callable[[], list[str]]] = {
        "videos": root.videos,
        "datasets": root.datasets,
        "runs": lambda: actions.run_names(root),
        "faces": lambda: actions.face_datasets(root),
    }

    def reread() -> tuple[Any, ...]:
        lists = {kind: listers[kind]() for kind in {k for k, _ in slots}}
        return tuple(_choices(lists[kind]) for kind, _ in slots)

    targets = [c for _, c in slots]
    app.load(reread, [], targets, show_progress="hidden")
    for tab, found in pages:
        tab.select(reread, [], targets, show_progress="hidden")
        if "on_open" in found:
            fn, outputs = found["on_open"]
            tab.select(fn, [], outputs, show_progress="hidden")


def serve(root: Path | str, host: str = "127.0.0.1", port: int = 7860, browser: bool = True) -> None:
    """Serve the app on ``host:port`` until interrupted; open it in the browser unless ``browser`` is False."""
    where = Root(root)
    app = create_app(where)
    app.queue(default_concurrency_limit=2).launch(
        server_name=host,
        server_port=port,
        inbrowser=browser,
        share=False,
        allowed_paths=[str(where.path)],
        blocked_paths=[str(where.app_dir / "jobs")],
        ssr_mode=False,
        quiet=False,
        css=CSS,
        footer_links=[],
    )
