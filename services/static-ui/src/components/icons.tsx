/** Line icons for the navigation (24×24, stroke = currentColor). Decorative: aria-hidden. */

const PATHS: Record<string, string> = {
  connect: "M9 7V3M15 7V3M6 7h12v4a6 6 0 0 1-12 0V7zM12 17v4",
  overview: "M4 4h7v7H4zM13 4h7v4h-7zM13 10h7v10h-7zM4 13h7v7H4z",
  chat: "M4 5h16v11H9l-5 4V5z",
  sessions: "M8 6h12M8 12h12M8 18h12M4 6h.01M4 12h.01M4 18h.01",
  agents: "M12 3v3M7 8h10a2 2 0 0 1 2 2v7a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2zM9.5 13h.01M14.5 13h.01",
  approvals: "M12 3l7 3v6c0 4.5-3 7.5-7 9-4-1.5-7-4.5-7-9V6l7-3zM9 12l2 2 4-4",
  devices: "M4 5h11v9H4zM2 18h15M18 8h4v11h-4z",
  cron: "M12 7v5l3 2M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z",
  config: "M4 6h10M18 6h2M4 12h4M12 12h8M4 18h12M20 18h0M14 4v4M8 10v4M16 16v4",
  logs: "M4 5h16v14H4zM7 9l3 3-3 3M12 15h5",
  usage: "M4 20V10M10 20V4M16 20v-7M22 20H2",
  menu: "M4 6h16M4 12h16M4 18h16",
  close: "M6 6l12 12M18 6L6 18",
};

export function Icon({ name }: { name: keyof typeof PATHS | string }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
      <path d={PATHS[name] ?? ""} fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" />
    </svg>
  );
}
