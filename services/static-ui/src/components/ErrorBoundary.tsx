/** Keeps one page's rendering bug from freezing the whole app; shows it and offers a retry. */

import { Component, type ComponentChildren } from "preact";

interface State {
  error: Error | undefined;
}

export class ErrorBoundary extends Component<{ children: ComponentChildren }, State> {
  override state: State = { error: undefined };

  static override getDerivedStateFromError(error: unknown): State {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  override render() {
    if (!this.state.error) return this.props.children;
    return (
      <div class="note note-error" role="alert" data-testid="page-crash">
        <p>
          <strong>This page hit a bug and stopped rendering.</strong> {this.state.error.message}
        </p>
        <button type="button" class="btn" data-testid="page-crash-retry" onClick={() => this.setState({ error: undefined })}>
          Try again
        </button>
      </div>
    );
  }
}
