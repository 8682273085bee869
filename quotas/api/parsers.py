from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JSONObjectParser(JSONParser):
    """DRF's JSON parser, except that JSON nested deeper than Python's recursion limit is a
    400 rather than a 500. (Oversized bodies are stopped before parsing, by Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE; see errors.py.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
