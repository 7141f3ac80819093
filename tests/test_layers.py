"""The package's layers hold: reviewkit's subpackages import only the layers below them, its modules import
one another without a cycle, and nothing in it imports the scripts or the benchmarks that sit on top of it.

The imports are read from the source with `ast`, those inside functions included, so the checks cost no import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT

PACKAGE = "reviewkit"
PACKAGE_DIR = ROOT / "scripts" / PACKAGE
# Bottom to top: a layer may import the layers before it, never one after it.
LAYERS = ["common", "data", "model", "tracking", "training", "evaluation", "marking"]
# The modules above the package: the scripts and the benchmarks, importable by these names.
ABOVE = sorted({path.stem for folder in ("scripts", "benchmarks") for path in (ROOT / folder).glob("*.py")})


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name: reviewkit.data.pipeline
    imported: str  # dotted module name, or the top-level name of a module outside the package
    where: str  # path:line of the import statement


def module_name(path: Path, package_dir: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(package_dir: Path) -> tuple[set[str], list[Import]]:
    """(every module of the package, every import statement's target) for the package at PACKAGE_DIR."""
    files = {module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}
    imports = []
    for importer, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            where = f"{path.relative_to(package_dir.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                imports += [Import(importer, alias.name, where) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = importer.split(".")
                    base = parts[:len(parts) - node.level + (1 if is_package else 0)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                # `from package import module` imports the module; `from module import name`, the module
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    imports.append(Import(importer, submodule if submodule in files else source, where))
    return set(files), imports


def layer_of(module: str) -> str | None:
    """The subpackage a module of the package is in; None for the package's own __init__ and outside modules."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def upward_imports(imports: list[Import], layers: list[str]) -> list[str]:
    """Each import from one layer of the package into a higher one, or into or from a layer not in LAYERS."""
    found = []
    for imp in imports:
        low, high = layer_of(imp.importer), layer_of(imp.imported)
        if low is None or high is None or low == high:
            continue
        if low not in layers or high not in layers:
            found.append(f"{imp.where}: {imp.importer} imports {imp.imported}; "
                         f"{low if low not in layers else high} is not in the layer order {layers}")
        elif layers.index(high) > layers.index(low):
            found.append(f"{imp.where}: {imp.importer} imports {imp.imported}, a layer above it "
                         f"({low} < {high} in {' < '.join(layers)})")
    return found


def import_cycles(modules: set[str], imports: list[Import]) -> list[str]:
    """Each set of modules that import one another in a circle (Tarjan's strongly connected components)."""
    edges = defaultdict(list)
    for imp in imports:
        if imp.imported in modules and imp.imported != imp.importer:
            edges[imp.importer].append(imp)
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imp in edges[module]:
            if imp.imported not in index:
                visit(imp.imported)
                low[module] = min(low[module], low[imp.imported])
            elif imp.imported in on_stack:
                low[module] = min(low[module], index[imp.imported])
        if low[module] == index[module]:
            component = {stack.pop()}
            while module not in component:
                component.add(stack.pop())
            on_stack.difference_update(component)
            if len(component) > 1:
                components.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return [f"cycle among {', '.join(sorted(component))}: "
            + "; ".join(f"{imp.where}: {imp.importer} imports {imp.imported}"
                        for module in sorted(component) for imp in edges[module] if imp.imported in component)
            for component in components]


def imports_from_above(imports: list[Import], above: list[str]) -> list[str]:
    return [f"{imp.where}: {imp.importer} imports {imp.imported}, which is a script or a benchmark"
            for imp in imports if imp.imported.split(".")[0] in above]


def test_every_module_is_in_a_declared_layer():
    subpackages = sorted(path.name for path in PACKAGE_DIR.iterdir() if (path / "__init__.py").is_file())
    assert subpackages == sorted(LAYERS)
    loose = [path.name for path in PACKAGE_DIR.glob("*.py") if path.name != "__init__.py"]
    assert not loose, f"modules outside every layer: {', '.join(loose)}"


def test_no_layer_imports_a_layer_above_it():
    _, imports = package_imports(PACKAGE_DIR)
    found = upward_imports(imports, LAYERS)
    assert not found, "\n".join(found)


def test_the_modules_import_one_another_without_a_cycle():
    modules, imports = package_imports(PACKAGE_DIR)
    found = import_cycles(modules, imports)
    assert not found, "\n".join(found)


def test_the_package_imports_no_script_or_benchmark():
    assert {"train_t5", "tune_lora", "reference", "project_path"} <= set(ABOVE)
    _, imports = package_imports(PACKAGE_DIR)
    found = imports_from_above(imports, ABOVE)
    assert not found, "\n".join(found)


def test_mlflow_model_imports_the_package_by_absolute_names():
    """MLflow runs mlflow_model.py as a file of its own ("models from code"): a relative import fails there."""
    path = PACKAGE_DIR / "model" / "mlflow_model.py"
    relative = [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative, f"relative imports in {path.relative_to(ROOT)} at lines {relative}"


def test_the_checks_find_each_kind_of_bad_import(tmp_path):
    package = tmp_path / "reviewkit"
    sources = {
        "__init__.py": "",
        "common/__init__.py": "",
        "common/files.py": "import os\n\nfrom ..data import loading\n",  # up a layer, as `from package import`
        "data/__init__.py": "",
        "data/loading.py": "from .cleaning import clean\n",
        "data/cleaning.py": "def clean():\n    from . import loading\n",  # a cycle through a lazy import
        "model/__init__.py": "",
        "model/modeling.py": "import train_t5\nfrom reviewkit.common.files import os\n"  # down a layer: allowed
                             "from ..data.cleaning import clean\n",
        "extra/__init__.py": "",
        "extra/tool.py": "from ..model import modeling\n",  # a subpackage missing from the layer order
    }
    for name, text in sources.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    modules, imports = package_imports(package)
    assert "reviewkit.data.cleaning" in modules and "reviewkit" in modules

    upward = upward_imports(imports, ["common", "data", "model"])
    assert upward == [
        "reviewkit/common/files.py:3: reviewkit.common.files imports reviewkit.data.loading, a layer above it "
        "(common < data in common < data < model)",
        "reviewkit/extra/tool.py:1: reviewkit.extra.tool imports reviewkit.model.modeling; "
        "extra is not in the layer order ['common', 'data', 'model']"]
    assert import_cycles(modules, imports) == [
        "cycle among reviewkit.data.cleaning, reviewkit.data.loading: "
        "reviewkit/data/cleaning.py:2: reviewkit.data.cleaning imports reviewkit.data.loading; "
        "reviewkit/data/loading.py:1: reviewkit.data.loading imports reviewkit.data.cleaning"]
    assert imports_from_above(imports, ["train_t5"]) == [
        "reviewkit/model/modeling.py:1: reviewkit.model.modeling imports train_t5, which is a script or a benchmark"]
