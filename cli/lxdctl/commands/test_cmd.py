"""``lxdctl test <name>``: only the test stage of the project's pipeline, in an ephemeral container."""
import click

from lxdctl.options import rule


@click.command("test")
@click.argument("name", callback=rule("project_name"))
@click.option("--branch", help="The branch (default: the pipeline's).")
@click.option("--commit", metavar="SHA", help="The commit (default: the branch's newest).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the outcome, not the log.")
@click.pass_context
def test(ctx, name, branch, commit, quiet):
    """Run only the test stage of project NAME's pipeline (exit 1 unless it passes)."""
    from lxdctl.commands.pipeline import _check_ref, run_now

    branch = _check_ref("branch")(ctx, None, branch)
    commit = _check_ref("commit")(ctx, None, commit)
    run_now(name, branch, commit, only=["test"], trigger="lxdctl test", quiet=quiet)
