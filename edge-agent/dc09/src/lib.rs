//! SIA DC-09 framing and SIA-DCS / ADM-CID event payloads (sans-IO).
