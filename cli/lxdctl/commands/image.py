"""``lxdctl image build`` and ``lxdctl image list``: the container images projects start from."""
import click

from lxdctl.collection import module_utils
from lxdctl.execute import execute
from lxdctl.options import output_option, run_options
from lxdctl.output import emit

RUNTIMES = ("base", "python", "node", "go")


@click.group()
def image():
    """Container images: the base image and one per runtime (python, node, go)."""


@image.command("build")
@click.option("--runtime", "-r", "runtimes", multiple=True, type=click.Choice(RUNTIMES),
              help="Build only this image (repeatable). Default: base and every runtime.")
@click.option("--force", is_flag=True, help="Rebuild even when the image exists.")
@run_options
def build(runtimes, force, dry_run, verbose):
    """Build missing images with debootstrap from the host's apt mirror (or rebuild with --force).

    \b
    Examples:
      lxdctl image build                     every missing image
      lxdctl image build -r python --force   rebuild the python image
    """
    execute("image_build", build_extravars(runtimes, force), dry_run=dry_run, verbose=verbose)


def build_extravars(runtimes, force):
    """Extra vars for playbooks/image_build.yml from the command's options."""
    extravars = {"platform_images_force": bool(force)}
    chosen = list(dict.fromkeys(runtimes or ()))
    if chosen:
        extravars["platform_images_runtimes"] = [name for name in chosen if name != "base"]
        # The base image is always ensured (it is cheap when it exists); forced only when asked for.
        extravars["_platform_images_force_base"] = bool(force) and "base" in chosen
    return extravars


@image.command("list")
@output_option
def list_images(output):
    """List the lxdctl images in LXD: alias, runtime, size and creation time."""
    errors = module_utils("_errors")
    lxd = module_utils("_lxd")
    try:
        rows = image_rows(lxd.list_images(lxd.connect({})))
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    emit(rows, output, columns=["alias", "runtime", "size", "created", "fingerprint"])


def image_rows(images):
    rows = []
    for img in images:
        for alias in img.get("aliases") or []:
            if not alias.startswith("lxdctl-"):
                continue
            props = img.get("properties") or {}
            rows.append({
                "alias": alias,
                "runtime": props.get("lxdctl.runtime") or alias[len("lxdctl-"):],
                "size": _human(img.get("size")),
                "size_bytes": img.get("size"),
                "created": props.get("lxdctl.build_date") or img.get("created_at"),
                "fingerprint": (img.get("fingerprint") or "")[:12],
            })
    return sorted(rows, key=lambda row: row["alias"])


def _human(size):
    if not isinstance(size, int):
        return None
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return "%.0f%s" % (value, unit) if unit == "B" else "%.1f%s" % (value, unit)
        value /= 1024
