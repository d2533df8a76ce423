"""Local files in remote mode: options that name a file or directory of the caller's machine.

A command's parameter names a local path when its type is ``click.Path`` or its metavar is
FILE or DIR (``create --env FILE``, ``deploy --path DIR``, ``pipeline setup --output-dir
DIR``).  Such a path means nothing on the server, so the client sends what it names:

* the request body is ``application/x-lxdctl-cli``: one JSON line ``{"argv": [...],
  "uploads": [...]}``, a newline, then a gzip'd tar.  Each upload is ``{"index": I,
  "option": "--env", "kind": "file" | "dir" | "missing" , "output": bool, "display": the
  text the user typed, "resolved": its realpath on the client}``, and ``argv[I]`` is
  ``"--env="`` with the value left out;
* the tar holds slot ``u<N>`` for upload N: the file, the directory tree, or (an output
  directory) only those of the command's ``OUTPUT_FILES`` that exist;
* the server unpacks each slot into a private temporary directory (refusing absolute
  paths, ``..``, links that leave the slot, devices, and more than ``MAX_UNPACKED`` bytes),
  runs the command there with ``--env=<slot>``, and removes the directory afterwards;
* it writes the slot's random name back as the user's text in what the command prints, so
  the output is the same as in local mode;
* files the command wrote into an output slot come back in a frame of channel 4 (a tar,
  members ``<upload index>/<relative path>``), and the client writes them under its own
  directory before the exit code arrives.
"""
import hashlib
import io
import json
import os
import secrets
import shutil
import stat
import tarfile
import tempfile

CONTENT_TYPE = "application/x-lxdctl-cli"
MAX_UPLOAD = int(os.environ.get("LXDCTL_API_UPLOAD_LIMIT") or 64 << 20)  # the request body, compressed
MAX_UNPACKED = 4 * MAX_UPLOAD
MAX_MEMBERS = 50000
MAX_OUTPUT = 16 << 20
# what deploy leaves out of a source directory anyway (roles/deploy/files/lxdctl_app.py): never uploaded
SKIP_NAMES = (".git", "node_modules", ".venv")
# command path -> (module, attribute): relative paths the command may write into its output directory;
# only these are uploaded from there, so that "unchanged" and "exists and differs" behave as locally
OUTPUT_FILES = {"pipeline setup": ("lxdctl.pipelines.ci_files", "FILES")}


# Every local-path option string, and every command with an output directory by default, of the
# CLI (tests/unit/test_api_uploads.py checks them against the commands): a remote command that
# names none of them is sent without importing its command module (~0.2 s)
PATH_OPTIONS = ("--env", "--path", "--output-dir")
DEFAULT_OUTPUT_COMMANDS = (("pipeline", "setup"),)


class UploadError(Exception):
    pass


# --- what names a local path ---------------------------------------------------------
def path_params(cmd):
    """``{param name: (click param, is_output)}`` of the command's local-path parameters."""
    import click

    found = {}
    for param in getattr(cmd, "params", ()):
        if not isinstance(param, click.Option):
            continue
        if isinstance(param.type, click.Path):
            found[param.name] = (param, bool(param.type.writable))
        elif (param.metavar or "").upper() in ("FILE", "DIR"):
            found[param.name] = (param, False)
    return found


def default_path(param):
    """The path a parameter names when it is not given (click 8.2+ marks "no default" with a sentinel)."""
    return param.default if isinstance(param.default, str) and param.default else None


def value_options(cmd):
    """The option strings of ``cmd`` that take a value (the next word, when not given with =)."""
    import click

    out = set()
    for param in getattr(cmd, "params", ()):
        if isinstance(param, click.Option) and not param.is_flag and not param.count:
            out.update(param.opts)
            out.update(param.secondary_opts)
    return out


def find_path_words(argv, start, cmd):
    """``[(index, option, value, takes_two_words)]`` for each local-path option in ``argv[start:]``."""
    params = path_params(cmd)
    if not params:
        return []
    options = dict((opt, name) for name, (param, _out) in params.items() for opt in param.opts)
    takes_value = value_options(cmd)
    found = []
    i = start
    while i < len(argv):
        word = argv[i]
        if word == "--":
            break
        if word.startswith("--") and "=" in word:
            opt, _, value = word.partition("=")
            if opt in options:
                found.append((i, opt, value, False))
            i += 1
        elif word in takes_value:
            if word in options and i + 1 < len(argv):
                found.append((i, word, argv[i + 1], True))
            i += 2
        elif not word.startswith("--") and word[:2] in options and len(word) > 2:
            found.append((i, word[:2], word[2:], False))  # -xVALUE
            i += 1
        else:
            i += 1
    return found


def option_name(cmd, opt):
    for name, (param, _out) in path_params(cmd).items():
        if opt in param.opts:
            return name
    return None


# --- the client side -------------------------------------------------------------------
def real_command(argv):
    """``(words, command, index after the words)`` of the local CLI's real command (not the forwarder)."""
    import importlib

    import click

    from lxdctl.main import COMMANDS

    if not argv or argv[0] not in COMMANDS:
        return [], None, 0
    module_name, attr = COMMANDS[argv[0]]
    cmd = getattr(importlib.import_module("lxdctl.commands." + module_name), attr)
    words = [argv[0]]
    i = 1
    while isinstance(cmd, click.Group) and i < len(argv) and not argv[i].startswith("-"):
        sub = cmd.get_command(None, argv[i])
        if sub is None:
            break
        cmd = sub
        words.append(argv[i])
        i += 1
    return words, cmd, i


def prepare(argv):
    """``(argv to send, uploads, tar.gz bytes or None)`` for running ``argv`` on a server."""
    if not any(w.split("=", 1)[0] in PATH_OPTIONS for w in argv) and \
            not any(tuple(argv[i:i + len(c)]) == c for c in DEFAULT_OUTPUT_COMMANDS for i in range(len(argv))):
        return list(argv), [], None
    import click

    words, cmd, start = real_command(list(argv))
    if cmd is None or isinstance(cmd, click.Group) or any(a in ("--help", "-h") for a in argv[start:]):
        return list(argv), [], None
    found = find_path_words(list(argv), start, cmd)
    params = path_params(cmd)
    given = set(option_name(cmd, opt) for _i, opt, _v, _two in found)
    out_argv = list(argv)
    for name, (param, is_output) in params.items():
        if is_output and name not in given and default_path(param):
            # the default (".") is the caller's directory too
            stop = out_argv.index("--") if "--" in out_argv else len(out_argv)
            out_argv.insert(stop, "%s=%s" % (max(param.opts, key=len), param.default))
    if not params:
        return out_argv, [], None
    found = find_path_words(out_argv, start, cmd)
    if not found:
        return out_argv, [], None
    uploads = []
    buf = io.BytesIO()
    total = [0]
    outputs = dict((n, o) for n, (_p, o) in params.items())
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:  # speed over size: mostly source code
        for slot, (index, opt, value, _two) in enumerate(found):
            is_output = outputs[option_name(cmd, opt)]
            kind = _pack(tar, "u%d" % slot, value, opt, is_output, " ".join(words), total)
            uploads.append({"option": opt, "kind": kind, "output": is_output, "display": value,
                            "resolved": os.path.realpath(value) if value else value, "index": index})
    # two-word options become one word "--opt=" (the value stays here); later indexes shift
    final = []
    positions = dict((u["index"], u) for u in uploads)
    two = dict((i, t) for i, _o, _v, t in found)
    skip = set()
    for i, word in enumerate(out_argv):
        if i in skip:
            continue
        if i in positions:
            positions[i]["index"] = len(final)
            final.append(positions[i]["option"] + "=")
            if two[i]:
                skip.add(i + 1)
            continue
        final.append(word)
    data = buf.getvalue()
    if len(data) > MAX_UPLOAD:
        raise UploadError("%s: the files come to %d bytes compressed, more than the %d the server takes "
                          "(LXDCTL_API_UPLOAD_LIMIT)" % (", ".join(u["option"] for u in uploads), len(data), MAX_UPLOAD))
    return final, uploads, data


def _pack(tar, slot, value, opt, is_output, command, total):
    if not value or not os.path.lexists(value):
        return "missing"
    st = os.stat(value) if os.path.exists(value) else os.lstat(value)
    if stat.S_ISREG(st.st_mode):
        _add_file(tar, slot, value, opt, total)
        return "file"
    if not stat.S_ISDIR(st.st_mode):
        raise UploadError("%s %s: only a regular file or a directory can be sent to the server" % (opt, value))
    tar.addfile(_dir_info(slot))
    if is_output:
        for rel in _output_files(command):
            path = os.path.join(value, rel)
            if os.path.isfile(path):
                _add_parents(tar, slot, rel)
                _add_file(tar, slot + "/" + rel.replace(os.sep, "/"), path, opt, total)
        return "dir"
    for root, dirs, files in os.walk(value):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES)
        rel_root = os.path.relpath(root, value)
        base = slot if rel_root == "." else slot + "/" + rel_root.replace(os.sep, "/")
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                _add_link(tar, base + "/" + name, path)
            else:
                tar.addfile(_dir_info(base + "/" + name, os.stat(path).st_mode))
        for name in sorted(files):
            if name in SKIP_NAMES:
                continue
            path = os.path.join(root, name)
            if os.path.islink(path):
                _add_link(tar, base + "/" + name, path)
            elif os.path.isfile(path):
                _add_file(tar, base + "/" + name, path, opt, total)
    return "dir"


def _dir_info(name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = stat.S_IMODE(mode) & 0o755 | 0o700
    return info


def _add_parents(tar, slot, rel):
    parts = rel.split(os.sep)[:-1]
    for n in range(1, len(parts) + 1):
        tar.addfile(_dir_info(slot + "/" + "/".join(parts[:n])))


def _add_file(tar, name, path, opt, total):
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_UNPACKED + 1 - total[0])
            mode = os.fstat(handle.fileno()).st_mode
    except (IOError, OSError) as exc:
        raise UploadError("%s: cannot read %s: %s" % (opt, path, exc.strerror or exc))
    total[0] += len(data)
    if total[0] > MAX_UNPACKED:
        raise UploadError("%s: more than %d bytes to send" % (opt, MAX_UNPACKED))
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = stat.S_IMODE(mode) & 0o755 | 0o600
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar, name, path):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = os.readlink(path)
    tar.addfile(info)


def _output_files(command):
    import importlib

    spec = OUTPUT_FILES.get(command)
    if not spec:
        return []
    found = getattr(importlib.import_module(spec[0]), spec[1])
    return sorted(set(found.values() if isinstance(found, dict) else found))


def write_outputs(data, uploads):
    """Client: write the files of a channel-4 frame under each output upload's own directory."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            index, _, rel = member.name.partition("/")
            up = uploads[int(index)] if index.isdigit() and int(index) < len(uploads) else None
            if up is None or not up.get("output") or not member.isfile() or not _safe_rel(rel):
                raise UploadError("the server sent an unexpected file %r" % member.name)
            path = os.path.join(up["display"], *rel.split("/"))
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            tmp = path + ".lxdctl-tmp"
            with open(tmp, "wb") as handle:
                shutil.copyfileobj(tar.extractfile(member), handle)
            os.replace(tmp, path)


def _safe_rel(rel):
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts) and "\\" not in rel


# --- the server side -------------------------------------------------------------------
def split_body(raw):
    """``(json object, tar bytes)`` of an ``application/x-lxdctl-cli`` body."""
    head, sep, rest = raw.partition(b"\n")
    if not sep:
        raise UploadError("the body needs a JSON line, a newline and the files")
    try:
        body = json.loads(head.decode("utf-8"))
    except ValueError:
        raise UploadError("the body's first line is not valid JSON")
    if not isinstance(body, dict):
        raise UploadError("the body's first line must be a JSON object")
    return body, rest


class Workspace:
    """The private directory one remote command runs in; ``close()`` removes it."""

    def __init__(self, uploads, data):
        self.dir = tempfile.mkdtemp(prefix="lxdctl-cli-")
        os.chmod(self.dir, 0o700)
        self.uploads = uploads
        self.slots = ["lxdctl-upload-%d-%s" % (n, secrets.token_hex(6)) for n in range(len(uploads))]
        self.before = {}
        try:
            self._unpack(data)
        except BaseException:
            self.close()
            raise

    def path(self, n):
        return os.path.join(self.dir, self.slots[n])

    def _unpack(self, data):
        count = 0
        size = 0
        try:
            tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") if data else None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UploadError("the files are not a gzip'd tar: %s" % exc)
        if tar is None:
            members = []
        else:
            members = tar
        try:
            for member in members:
                count += 1
                if count > MAX_MEMBERS:
                    raise UploadError("more than %d files uploaded" % MAX_MEMBERS)
                slot, _, rel = member.name.partition("/")
                n = int(slot[1:]) if slot[:1] == "u" and slot[1:].isdigit() else -1
                if not 0 <= n < len(self.uploads) or self.uploads[n]["kind"] == "missing" or \
                        (rel and not _safe_rel(rel)) or (not rel and member.name != slot):
                    raise UploadError("upload member %r is outside its slot" % member.name)
                dest = os.path.join(self.path(n), *rel.split("/")) if rel else self.path(n)
                if rel and not _inside(os.path.realpath(os.path.dirname(dest)), os.path.realpath(self.path(n))):
                    raise UploadError("upload member %r goes through a link out of its slot" % member.name)
                if os.path.lexists(dest) and not (member.isdir() and os.path.isdir(dest) and not os.path.islink(dest)):
                    raise UploadError("upload member %r is there twice" % member.name)
                if member.isdir():
                    if not os.path.isdir(dest):
                        os.mkdir(dest, 0o700)
                    os.chmod(dest, member.mode & 0o755 | 0o700)
                elif member.isfile():
                    size += member.size
                    if size > MAX_UNPACKED:
                        raise UploadError("the upload unpacks to more than %d bytes" % MAX_UNPACKED)
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb") as handle:
                        shutil.copyfileobj(tar.extractfile(member), handle)
                    os.chmod(dest, member.mode & 0o755 | 0o600)
                elif member.issym() and rel:
                    target = os.path.normpath(os.path.join(os.path.dirname(dest), member.linkname))
                    if os.path.isabs(member.linkname) or not _inside(target, os.path.realpath(self.path(n))):
                        raise UploadError("upload member %r links out of its directory" % member.name)
                    os.symlink(member.linkname, dest)
                else:
                    raise UploadError("upload member %r: only files, directories and links inside are taken"
                                      % member.name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, UploadError):
                raise
            raise UploadError("the files could not be unpacked: %s" % exc)
        finally:
            if tar is not None:
                tar.close()
        for n, up in enumerate(self.uploads):
            if up["kind"] == "dir" and not os.path.isdir(self.path(n)):
                os.mkdir(self.path(n), 0o700)
            if up["kind"] == "file" and not os.path.isfile(self.path(n)):
                raise UploadError("upload %d (%s) is missing its file" % (n, up["option"]))
            if up.get("output"):
                self.before[n] = _digests(self.path(n))

    def substitutions(self):
        """``[(bytes on the server, bytes the user wrote)]``, longest first."""
        pairs = []
        for n, up in enumerate(self.uploads):
            pairs.append((os.path.realpath(self.path(n)), up.get("resolved") or up["display"]))
            pairs.append((self.path(n), up["display"]))
            pairs.append((self.slots[n], up["display"]))
        pairs.sort(key=lambda p: -len(p[0]))
        return [(a.encode(), b.encode()) for a, b in pairs]

    def outputs(self):
        """A tar of the files the command wrote or changed in output slots, or None."""
        buf = io.BytesIO()
        added = 0
        size = 0
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for n, before in self.before.items():
                for rel, digest in sorted(_digests(self.path(n)).items()):
                    if before.get(rel) == digest:
                        continue
                    path = os.path.join(self.path(n), *rel.split("/"))
                    size += os.path.getsize(path)
                    if size > MAX_OUTPUT:
                        raise UploadError("the command wrote more than %d bytes" % MAX_OUTPUT)
                    tar.add(path, arcname="%d/%s" % (n, rel), recursive=False)
                    added += 1
        return buf.getvalue() if added else None

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _digests(root):
    out = {}
    if not os.path.isdir(root):
        return out
    for base, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root).replace(os.sep, "/")] = hashlib.sha256(handle.read()).hexdigest()
    return out


def rewrite(data, pairs):
    for old, new in pairs:
        data = data.replace(old, new)
    return data
