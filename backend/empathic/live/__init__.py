"""Live analysis: faces and voices of a camera or a stream while it plays, with bounded latency.

``sampling`` decides, as frames and sound arrive, which frame is a face sample and when a voice window
closes, with the same rules as the file analyses; ``slot`` hands the newest item to a model and counts
those it had to drop; ``session`` runs the models beside the stream and collects the same results as
``annotate``; ``events`` and ``summary`` describe it as it happens and at the end; ``source`` reads
live inputs (and files at their own rate) through PyAV.
"""
