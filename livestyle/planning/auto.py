"""``--model auto``: the best model whose weights are present and that fits this GPU, else passthrough.

"Best" is the budget planner's quality order (:func:`livestyle.planning.budget.plan`: larger model,
larger size, more steps) among the models whose files are already on disk, for the stream's frame
rate (else :data:`FALLBACK_FPS`) within :data:`AUTO_LATENCY_MS`, on the profile of the local GPU
(:func:`livestyle.planning.gpu.detect_gpu`; an unknown card is planned as the slowest shipped
profile, so the choice errs small). No weights, no CUDA GPU or no plan that fits: ``passthrough``,
with the reason and what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from livestyle.errors import LivestyleError

__all__ = ["AUTO_LATENCY_MS", "FALLBACK_FPS", "FALLBACK_PROFILE", "AutoChoice", "choose_model", "passthrough_warnings", "present_models"]

AUTO_LATENCY_MS = 1000.0
"""Glass-to-glass budget the automatic choice plans for."""
FALLBACK_PROFILE = "rtx3060"
"""Profile for a CUDA GPU that no shipped profile matches: the slowest one."""
FALLBACK_FPS: tuple[float, ...] = (15.0, 8.0)
"""Frame rates tried, in turn, when the stream's own rate is out of reach: a slower styled stream
beats an unstyled one."""
GET_A_MODEL = "livestyle weights pull sdv2-1.3b, then add --model sdv2-1.3b (GPU with 12 GB or more)"


@dataclass(frozen=True)
class AutoChoice:
    """The generator ``--model auto`` picked and a one-line reason to print."""

    model: str
    reason: str

    @property
    def styles(self) -> bool:
        """Whether the choice is a model (prompts and effects do something)."""
        return self.model != "passthrough"


def present_models(weights_dir: str | None = None, names: Sequence[str] | None = None) -> list[str]:
    """The planner's models (``names``, default all) whose required files are all on disk."""
    from livestyle.models.weights import get_model, locate
    from livestyle.planning.budget import MODEL_SHAPES

    found = []
    for name in names if names is not None else list(MODEL_SHAPES):
        try:
            spec = get_model(name)
            if all(f.optional or locate(spec, role, weights_dir=weights_dir)[0] is not None
                   for role, f in spec.files.items()):
                found.append(name)
        except LivestyleError:
            continue
    return found


def choose_model(
    fps: float,
    weights_dir: str | None = None,
    *,
    present: Callable[[str | None], list[str]] = present_models,
    gpu: Callable[[], object | None] | None = None,
) -> AutoChoice:
    """Pick the generator for ``--model auto`` (``present`` and ``gpu`` are injectable for tests)."""
    from livestyle.planning.budget import Target, load_profile, plan

    models = present(weights_dir)
    if not models:
        return AutoChoice("passthrough", f"no model weights found, so the input is shown unchanged; to style it: {GET_A_MODEL}")
    if gpu is None:
        from livestyle.planning.gpu import detect_gpu

        gpu = detect_gpu
    local = gpu()
    if local is None:
        return AutoChoice("passthrough", f"weights for {', '.join(models)} are present but no CUDA GPU is visible; "
                          "showing the input unchanged (force a model with --model NAME)")
    profile_name = getattr(local, "profile", None) or FALLBACK_PROFILE
    profile = load_profile(profile_name)
    memory = float(getattr(local, "memory_gib", profile.memory_gib))
    if memory < profile.memory_gib:  # e.g. an unmatched card planned on the fallback profile
        profile = replace(profile, memory_gib=memory)
    best = None
    for want in sorted({fps, *(f for f in FALLBACK_FPS if f < fps)}, reverse=True):
        try:
            best = plan(profile, Target(fps=want, latency_ms=AUTO_LATENCY_MS, models=tuple(models)))
            break
        except LivestyleError as exc:
            error = exc
    if best is None:
        return AutoChoice("passthrough", f"no model present fits this GPU ({error}); showing the input unchanged")
    name = getattr(local, "name", profile.title)
    return AutoChoice(best.candidate.model, f"{best.candidate.model} (weights present; fits {name}, "
                      f"about {best.fps:.0f} fps predicted by the {profile.name} profile)")


def passthrough_warnings(*, prompt_given: bool, preset_given: bool, effect: str) -> list[str]:
    """What passthrough silently ignores, as warnings: a prompt, a preset, a background effect."""
    ignored = [what for what, given in (("the prompt", prompt_given), ("the preset", preset_given),
                                         (f"--effect {effect}", effect != "full")) if given]
    if not ignored:
        return []
    return [f"{' and '.join(ignored)} will do nothing: passthrough has no model. To style: {GET_A_MODEL}"]
