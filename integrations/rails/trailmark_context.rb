# Trailmark capture context for Rails (the whole integration).
#
# Include in ApplicationController. Each request runs in one database
# transaction that starts with SELECT trailmark.set_context(...) (both capture
# modes; set_config('trailmark.*', ..., true) where capture predates the
# function: a connection that found it believes so for good, one that did not
# asks again after RECHECK_SECONDS, so capture installed while the
# application runs reaches it), so
# every write the request makes -- update_all, insert_all, raw SQL through
# the connection, callbacks or not -- is captured with who made it, and the
# values end with the transaction: the pooled connection carries nothing into
# the next request. (A request that fails rolls back its writes, as one
# transaction does.)
require "json"

module TrailmarkContext
  NAMES = %w[actor_id actor_type actor_name ip user_agent request_id session_id tenant reason].freeze
  # How long a connection believes its database has no trailmark.set_context
  # (the Python integrations' RECHECK_SECONDS, the same 10 s).
  RECHECK_SECONDS = 10.0

  def self.included(base)
    base.around_action :with_trailmark_context
  end

  # The SQL that sets `context` on `connection`'s current transaction.
  def self.set_config_sql(connection, context)
    pairs = NAMES.filter_map do |name|
      value = context[name.to_sym] || context[name]
      next if value.nil? || value.to_s.empty?

      "set_config(#{connection.quote("trailmark.#{name}")}, #{connection.quote(value.to_s)}, true)"
    end
    pairs.empty? ? nil : "SELECT #{pairs.join(', ')}"
  end

  # The SQL that sets `context` on `connection`'s current transaction in
  # either capture mode: trailmark.set_context where the database has it.
  def self.context_sql(connection, context)
    return set_config_sql(connection, context) unless set_context?(connection)

    given = NAMES.each_with_object({}) do |name, out|
      value = context[name.to_sym] || context[name]
      out[name] = value.to_s unless value.nil? || value.to_s.empty?
    end
    given.empty? ? nil : "SELECT trailmark.set_context(#{connection.quote(JSON.generate(given))}::jsonb)"
  end

  # Whether `connection`'s database has trailmark.set_context: kept with
  # the connection, true for good, or the time to ask again.
  def self.set_context?(connection)
    known = connection.instance_variable_get(:@trailmark_set_context) if connection.instance_variable_defined?(:@trailmark_set_context)
    return true if known == true

    now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    return false if known && now < known

    found = [true, "t"].include?(
      connection.select_value("SELECT to_regprocedure('trailmark.set_context(jsonb)') IS NOT NULL"),
    )
    connection.instance_variable_set(:@trailmark_set_context, found || now + RECHECK_SECONDS)
    found
  end

  private

  # Override to name the actor your authentication knows.
  def trailmark_context
    user = respond_to?(:current_user, true) ? current_user : nil
    {
      actor_id: user&.id,
      actor_type: user ? "user" : nil,
      actor_name: user.respond_to?(:email) ? user.email : nil,
      ip: request.remote_ip,
      user_agent: request.user_agent,
      request_id: request.request_id,
    }
  end

  def with_trailmark_context
    ActiveRecord::Base.transaction do
      connection = ActiveRecord::Base.connection
      sql = TrailmarkContext.context_sql(connection, trailmark_context)
      connection.execute(sql) if sql
      yield
    end
  end
end
