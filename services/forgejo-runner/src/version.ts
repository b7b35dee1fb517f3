/** Sent in Register and Declare; the forge shows it in its runner list. */
export const RUNNER_VERSION = "solstice-0.1.0";
