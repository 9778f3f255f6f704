namespace Apex.Server.Execution;

/// <summary>Why a run was cancelled, as stored with the run and sent in <c>run_cancelled</c>.</summary>
internal static class CancelReasons
{
    public const string User = "cancelled_by_user";
    public const string Interrupted = "interrupted";
    public const string Shutdown = "server_shutdown";
    public const string Timeout = "timeout";
    public const string ThreadDeleted = "thread_deleted";
    /// <summary>The client of a door that streams the run (<c>/api/agui</c>, <c>/v1</c>, <c>/mcp</c>) went away before the run ended.</summary>
    public const string ClientAborted = "client_aborted";
    /// <summary>An admin cancelled the run (<c>POST /api/admin/runs/{id}/cancel</c>).</summary>
    public const string Admin = "cancelled_by_admin";
}
