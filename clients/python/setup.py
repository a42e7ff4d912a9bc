"""Build hook: generate the capvault.v1 gRPC stubs from the repository's proto/ into the built package.

The stubs are never committed: `pip install ./clients/python` (or building a wheel or an sdist) runs protoc (the one
bundled with grpcio-tools, a build requirement) on proto/capvault/v1/*.proto. The proto directory is, in order:
$CAPVAULT_PROTO_DIR, ./proto (inside an sdist), ../../proto (in the repository).
"""
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def proto_root() -> Path:
    for candidate in (os.environ.get("CAPVAULT_PROTO_DIR"), HERE / "proto", HERE.parent.parent / "proto"):
        if candidate and (Path(candidate) / "capvault" / "v1").is_dir():
            return Path(candidate).resolve()
    raise SystemExit("capvault: cannot find proto/capvault/v1 (set CAPVAULT_PROTO_DIR)")


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    include = Path(grpc_tools.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    files = sorted(str(p.relative_to(root)) for p in (root / "capvault" / "v1").glob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{root}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *files]
    if protoc.main(args) != 0:
        raise SystemExit(f"capvault: protoc failed: {' '.join(args)}")
    (out / "capvault" / "v1" / "__init__.py").write_text('"""Generated from proto/capvault/v1 at build time. DO NOT EDIT."""\n')


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate(Path(self.build_lib))

    def find_package_modules(self, package, package_dir):
        # capvault.v1 exists only in the build output.
        if package == "capvault.v1":
            return []
        return super().find_package_modules(package, package_dir)

    def check_package(self, package, package_dir):
        if package == "capvault.v1":
            return None
        return super().check_package(package, package_dir)


class SdistWithProtos(sdist):
    """An sdist carries the protos it was built from, so it builds anywhere."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        src = proto_root()
        shutil.copytree(src / "capvault", Path(base_dir) / "proto" / "capvault", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos}, package_dir={"capvault.v1": "capvault/v1"})
