"""hebdo-mail: a self-hosted weekly newsletter publisher."""

from .errors import BuildError, ConfigError, HebdoError, IssueError, TemplateError

__all__ = ["BuildError", "ConfigError", "HebdoError", "IssueError", "TemplateError", "__version__"]
__version__ = "0.1.0"
