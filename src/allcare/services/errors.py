"""Domain errors; the API layer maps each kind to an HTTP status with a JSON ``detail``."""


class ServiceError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    pass


class Forbidden(ServiceError):
    pass


class InvalidInput(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Unavailable(ServiceError):
    pass


class TooManyRequests(ServiceError):
    """A limit on how often a client may do something; retry after ``retry_after`` seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """Temporarily refused for load; the client may retry after ``retry_after`` seconds."""

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PayloadTooLarge(ServiceError):
    pass


class UnsupportedMedia(ServiceError):
    pass
