"""A graph whose module cannot be imported (a dependency the project forgot to install)."""

import a_package_nobody_installed  # noqa: F401

graph = None
