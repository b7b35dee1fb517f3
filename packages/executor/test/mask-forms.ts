/** The encodings a masker must catch, by name; shared by the unit and VM leak tests. */
export const MASK_TEST_FORMS = ["raw", "base64", "base64url", "uri", "form", "json", "base64-shifted"] as const;

export function maskTestForms(secret: string): Record<(typeof MASK_TEST_FORMS)[number], string> {
  return {
    raw: secret,
    base64: Buffer.from(secret).toString("base64"),
    base64url: Buffer.from(secret).toString("base64url"),
    uri: encodeURIComponent(secret),
    form: encodeURIComponent(secret).replaceAll("%20", "+"),
    json: JSON.stringify(secret).slice(1, -1),
    "base64-shifted": Buffer.from(`x${secret}`).toString("base64"),
  };
}
