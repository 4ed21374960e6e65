"""The SDK's version, sent as the user agent ``omnistock-python/<version>``."""

__version__ = "0.2.0"
USER_AGENT = f"omnistock-python/{__version__}"
