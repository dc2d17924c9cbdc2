import { describe, expect, it } from "vitest";
import { chooseAuth } from "./auth";

describe("chooseAuth", () => {
  it("prefers the typed secret, then the device token, then nothing", () => {
    expect(chooseAuth("token", " t1 ", "dt")).toEqual({ token: "t1" });
    expect(chooseAuth("password", "pw", "dt")).toEqual({ password: "pw" });
    expect(chooseAuth("token", "", "dt")).toEqual({ deviceToken: "dt" });
    expect(chooseAuth("password", "  ", "")).toBeUndefined();
  });
});
