/** Sent as `connect.client.version`; bump with package.json. */
export const APP_VERSION = "0.1.0";
