"""Packaging beyond what pyproject.toml can say: ship the rule set and its fixtures.

``rules/`` and ``fhir_examples/`` live at the top of the repository; they are mapped into the
package as ``cds.bundled.rules`` and ``cds.bundled.fhir_examples`` so that an installed kap-cds
(a wheel, not only an editable checkout) has its default rule set.
"""

from setuptools import find_namespace_packages, find_packages, setup

BUNDLED = {"cds.bundled.rules": "rules", "cds.bundled.fhir_examples": "fhir_examples"}

# Every folder of the bundled trees is a (data-only) package, so setuptools ships it as one.
DATA_PACKAGES = [
    package
    for name, root in BUNDLED.items()
    for package in [name, *(f"{name}.{sub}" for sub in find_namespace_packages(where=root))]
]

setup(
    packages=find_packages(include=["cds", "cds.*"]) + DATA_PACKAGES,
    package_dir=BUNDLED,
    package_data={
        "cds": [
            "py.typed",
            "audit/migrations/*.py",
            "audit/migrations/*.mako",
            "audit/migrations/versions/*.py",
        ],
        **{name: ["*.yaml", "*.json", "*.md"] for name in DATA_PACKAGES},
    },
)
