"""The one error the harness raises."""


class ComponentError(RuntimeError):
    """A component could not be obtained or started.

    The message names the component, says what was tried and carries the tail of its log, so a
    red CI run says why without anyone re-running it by hand.
    """

    def __init__(self, component: str, message: str, log_tail: str = "") -> None:
        self.component = component
        self.log_tail = log_tail
        text = f"{component}: {message}"
        if log_tail:
            text += f"\n--- last lines of the {component} log ---\n{log_tail}"
        super().__init__(text)
