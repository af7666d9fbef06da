"""A local SMTP sink for vigil's alerting tests: accepts every message on 127.0.0.1 and writes
each one as an .eml file (envelope sender and recipients as X-Envelope-* headers first) into a
directory, plus a .json summary parsed with Python's `email` package (envelope, subject,
message id, and every MIME part with its content type and decoded text), so tests can assert
on decoded parts without a MIME parser of their own. Started and stopped by
scripts/services/smtp.sh.

    python smtp_sink.py --port 12525 --dir DIR --pidfile FILE
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        name = "%d-%06d-%d.eml" % (time.time_ns(), self.n, os.getpid())
        head = "X-Envelope-From: %s\r\n" % envelope.mail_from
        for rcpt in envelope.rcpt_tos:
            head += "X-Envelope-To: %s\r\n" % rcpt
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(head.encode("ascii", "replace") + data)
        msg = email.message_from_bytes(data, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                parts.append({"content_type": part.get_content_type(), "multipart": True})
                continue
            body = part.get_content()
            entry = {"content_type": part.get_content_type(), "multipart": False,
                     "content_id": part.get("Content-ID", "")}
            if isinstance(body, str):
                entry["text"] = body
            else:
                entry["bytes"] = len(body)
                entry["png"] = body[:8] == b"\x89PNG\r\n\x1a\n"
            parts.append(entry)
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            "to": str(msg.get("To", "")),
            "from": str(msg.get("From", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "parts": parts,
        }
        with open(tmp + ".json", "w") as f:
            json.dump(summary, f, indent=1)
        # The .json lands first: a reader that sees the .eml sees its summary too.
        os.replace(tmp + ".json", os.path.join(self.directory, name[:-4] + ".json"))
        os.replace(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=12525)
    p.add_argument("--dir", required=True)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("smtp sink listening on 127.0.0.1:%d, writing to %s" % (args.port, args.dir), flush=True)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
